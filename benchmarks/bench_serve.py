"""Load on the moderation endpoint: throughput and latency with dynamic batching vs one request at a time.

For each model (the bundled organism, and SmolLM2-135M-Instruct on real weights when installed) a guard is
fitted on bundled prompts, a server (``sahs_lens.serve``, uvicorn) starts on loopback, and ``--clients``
concurrent clients send ``POST /classify`` with one prompt each, back to back, for ``--seconds`` (it stops
by itself). Every answer is compared with ``guard.classify`` of the same prompt alone: the verdict must be
the same (flagged equal, score within 1e-4). The same load runs twice, with ``max_batch`` 16 and 1, side by
side in one run (this machine's speed varies; the ratio is what travels).

    python benchmarks/bench_serve.py --json                 # organism + SmolLM2, 8 clients x 20 s each
    python benchmarks/bench_serve.py --smoke                # organism only, 4 clients x 3 s
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine_info  # noqa: E402
from reporting import format_table, publish  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="organism only, 4 clients x 3 s")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--models", default="organism,smollm2-135m-instruct")
    parser.add_argument("--size", default="loopback")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--json",
        nargs="?",
        const="auto",
        default=None,
        help="write the result (default: benchmarks/results/)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.clients, args.seconds, args.models = 4, 3.0, "organism"
    return args


def _guarded(name: str) -> tuple[Any, Any, list[str]]:
    from model_adapters import load_vlm
    from sahs_lens import SafetyHeadGuard, collect_head_activations, probe_sweep, rank_heads
    from sahs_lens.data import load_data
    from sahs_lens.organism import load_organism

    model = load_organism() if name == "organism" else load_vlm(name)
    train = load_data("harmful_text:train@48") + load_data("benign_text:train@48")
    acts = collect_head_activations(model, train, batch_size=16, progress=False)
    heads = rank_heads(probe_sweep(acts, shots=[8, 16], repeats=3, progress=False), k=8, criterion="stable")
    guard = SafetyHeadGuard.fit(acts, heads)
    prompts = [s.prompt for s in load_data("harmful_text:heldout@24") + load_data("benign_text:heldout@24")]
    return model, guard, prompts


def _load(
    url: str, prompts: list[str], clients: int, seconds: float
) -> tuple[list[float], list[tuple[str, dict]], int]:  # type: ignore[type-arg]
    import httpx

    latencies: list[float] = []
    answers: list[tuple[str, dict]] = []  # type: ignore[type-arg]
    errors = 0

    async def client(index: int, http: httpx.AsyncClient, stop: float) -> None:
        nonlocal errors
        i = index
        while time.perf_counter() < stop:
            prompt = prompts[i % len(prompts)]
            i += clients
            started = time.perf_counter()
            response = await http.post(url + "/classify", json={"input": prompt})
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors += 1
                continue
            answers.append((prompt, response.json()["results"][0]))

    async def main() -> None:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as http:
            stop = time.perf_counter() + seconds
            await asyncio.gather(*(client(i, http, stop) for i in range(clients)))

    asyncio.run(main())
    return latencies, answers, errors


def _serve(model: Any, guard: Any, max_batch: int) -> tuple[Any, threading.Thread, str]:
    from sahs_lens.cli.serve import _server, _url
    from sahs_lens.serve import create_app

    server = _server(create_app(model, guard, max_batch=max_batch, max_queue=4096), "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, _url(server)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for name in args.models.split(","):
        model, guard, prompts = _guarded(name)
        alone = {p: v for p, v in zip(prompts, guard.classify(model, prompts, batch_size=1), strict=True)}
        for max_batch in (16, 1):
            server, thread, url = _serve(model, guard, max_batch)
            started = time.perf_counter()
            latencies, answers, errors = _load(url, prompts, args.clients, args.seconds)
            elapsed = time.perf_counter() - started
            batches = server.config.app.state.batcher.batches
            server.should_exit = True
            thread.join(timeout=60)
            diffs = [abs(v["score"] - alone[p].score) for p, v in answers]
            differing = sum(v["flagged"] != alone[p].flagged or abs(v["score"] - alone[p].score) > 1e-4
                            for p, v in answers)  # fmt: skip
            rows.append({
                "model": name, "max_batch": max_batch, "clients": args.clients, "seconds": round(elapsed, 2),
                "requests": len(latencies), "errors": errors, "requests_per_s": len(latencies) / elapsed,
                "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
                "p95_ms": 1000 * _percentile(latencies, 0.95), "p99_ms": 1000 * _percentile(latencies, 0.99),
                "prefills": batches, "verdicts_differing": differing, "max_score_diff": max(diffs, default=0.0),
            })  # fmt: skip
    by = {(r["model"], r["max_batch"]): r for r in rows}
    headline = {
        f"{m} batching speed-up (requests/s, max_batch 16 vs 1)": by[(m, 16)]["requests_per_s"]
        / by[(m, 1)]["requests_per_s"]
        for m in args.models.split(",")
    }
    headline["errors"] = sum(r["errors"] for r in rows)
    headline["verdicts differing from classify alone"] = sum(r["verdicts_differing"] for r in rows)
    return publish(
        "serve", args, model={"models": args.models.split(",")}, headline=headline, rows=rows,
        render=lambda result: format_table(result["rows"], [
            ("model", "model"), ("max_batch", "max batch"), ("requests", "requests"), ("errors", "errors"),
            ("requests_per_s", "req/s"), ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms"),
            ("prefills", "prefills"), ("verdicts_differing", "differing"), ("max_score_diff", "max |diff|")]),
        info=machine_info(args.device),
    )  # fmt: skip


if __name__ == "__main__":
    run(parse_args())
