"""The benchmark sweep runs end to end at its smoke settings and writes every table and JSON result.

No timing is asserted: these machines are shared and noisy; the benchmarks' numbers live in
``benchmarks/README.md`` and ``benchmarks/results/``. This only proves that ``run_all.py --smoke`` works and
that each result carries the keys the README and the summary read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_ALL = ROOT / "benchmarks" / "run_all.py"
COMMON_KEYS = {"bench", "machine", "settings", "model", "headline", "rows"}
MACHINE_KEYS = {"cpu", "cores", "torch", "transformers", "transformer_lens", "date", "machine"}
HEADLINE_KEYS = {
    "collection": {"collect_vs_forward", "collect_vs_run_with_cache", "collect_vs_paper", "target", "met"},
    "guard": {"ratio_worst", "ratio_by_batch", "floor", "floor_with_dot", "same_output", "hf_ratio_by_batch"},
    "adapter": {"ratio_worst", "ratios", "target", "met", "parity", "backend", "by_backend"},
    "scaling": {
        "alpha_samples", "alpha_image_tokens", "alpha_heads", "alpha_probe_n", "alpha_probe_heads",
        "alpha_last", "alpha_memory",
    },
    "detectors": {
        "ratio_by_detector_batch", "ms_per_prompt_by_detector_batch", "extra_forwards", "worst_in_prefill_ratio",
    },
    "distributed": {"ranks", "efficiency", "speedup", "target", "met", "same_output", "cpu_efficiency"},
}  # fmt: skip
ROW_KEYS = {
    "collection": {"method", "batch", "median_s", "samples_per_s", "collect_speedup", "peak_mb"},
    "guard": {"path", "batch", "guarded_s", "plain_s", "ratio", "cpu_ratio", "dot_ms", "same_output"},
    "adapter": {"backend", "kind", "batch", "raw_s", "hooked_s", "ratio", "cpu_ratio", "target", "parity"},
    "scaling": {"sweep", "x", "median_s", "cpu_s", "peak_mb"},
    "detectors": {"detector", "batch", "extra_forwards", "detector_s", "plain_s", "ms_per_prompt", "ratio"},
    "distributed": {"launch", "ranks", "median_s", "samples_per_s", "peak_rss_mb"},
}
CONCURRENT_KEYS = {
    "threads", "prompts", "sequential_pps", "threaded_pps", "ratio", "cpu_ratio", "same_output",
}  # fmt: skip
TABLE_MARKERS = {
    "collection": "HEADLINE collect / forward throughput",
    "guard": "HEADLINE guarded / unguarded generation",
    "adapter": "HEADLINE HookedVLM / raw Hugging Face",
    "scaling": "HEADLINE time ~ size^alpha",
    "detectors": "bench_detectors: size",
    "distributed": "HEADLINE scaling efficiency at",
}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench_results")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(RUN_ALL), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    return done, out


@pytest.mark.slow
def test_smoke_sweep_succeeds(smoke_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, _ = smoke_run
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "=== summary" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("bench", sorted(HEADLINE_KEYS))
def test_each_benchmark_writes_table_and_json(
    smoke_run: tuple[subprocess.CompletedProcess[str], Path], bench: str
) -> None:
    done, out = smoke_run
    assert TABLE_MARKERS[bench] in done.stdout
    files = sorted(out.glob(f"{bench}-tiny-*.json"))
    assert len(files) == 1, f"expected one {bench} result in {out}; found {[f.name for f in out.iterdir()]}"
    result = json.loads(files[0].read_text())
    assert not COMMON_KEYS - set(result), f"missing top-level keys {COMMON_KEYS - set(result)}"
    assert result["bench"] == bench
    assert not MACHINE_KEYS - set(result["machine"]), "missing machine keys"
    assert not HEADLINE_KEYS[bench] - set(result["headline"]), "missing headline keys"
    assert result["rows"], "a benchmark result must have at least one row"
    for row in result["rows"]:
        name = next((row[k] for k in ("method", "kind", "sweep", "detector", "launch") if k in row), None)
        assert not ROW_KEYS[bench] - set(row), f"row {name} misses keys"
    assert result["settings"]["size"] == "tiny" and result["settings"]["smoke"] is True


@pytest.mark.slow
def test_optional_benchmarks_write_json(smoke_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """A benchmark that run_all found beyond the three above (bench_probes.py) also leaves a JSON result."""
    _, out = smoke_run
    if (ROOT / "benchmarks" / "bench_probes.py").exists():
        files = sorted(out.glob("probes-tiny-*.json"))
        assert len(files) == 1
        assert "headline" in json.loads(files[0].read_text())


@pytest.mark.slow
def test_correctness_checks_hold(smoke_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """Not timings: the two sides of each comparison did the same work (same tokens, flags nothing)."""
    _, out = smoke_run
    guard = json.loads(next(out.glob("guard-tiny-*.json")).read_text())
    assert guard["headline"]["same_output"] is True
    assert guard["headline"]["backend"] == "hf" and guard["model"]["identity"]["backend"] == "hf"
    adapter = json.loads(next(out.glob("adapter-tiny-*.json")).read_text())
    assert adapter["headline"]["parity"] is True


@pytest.mark.slow
def test_adapter_measures_both_backends_with_explicit_parity(
    smoke_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """Every case on both backends against raw HF, each row with its own parity flag (never a default)."""
    done, out = smoke_run
    adapter = json.loads(next(out.glob("adapter-tiny-*.json")).read_text())
    assert adapter["settings"]["backends"] == ["hf", "bridge"]
    cases = {(row["kind"], row["batch"]) for row in adapter["rows"]}
    assert {(row["backend"], row["kind"], row["batch"]) for row in adapter["rows"]} == {
        (backend, *case) for backend in ("hf", "bridge") for case in cases
    }
    for row in adapter["rows"]:
        assert row["parity"] is True, row
        if row["kind"] == "forward":
            assert row["same_logits"] is True and row["max_abs_logit_diff"] <= row["logit_tol"]
        else:
            assert row["same_tokens"] is True and row["full_length"] is True
        assert row["target"] == {"hf": 1.02, "bridge": 1.10}[row["backend"]]
    assert set(adapter["headline"]["by_backend"]) == {"hf", "bridge"}
    assert adapter["headline"]["backend"] == "hf"
    assert "bridge backend / raw HF" in done.stdout


def _bench(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)


@pytest.mark.slow
def test_guard_runs_on_the_bridge_backend(tmp_path: Path) -> None:
    """``bench_guard.py --backend bridge``: the hooked path on the bridge, same tokens on both sides."""
    path = tmp_path / "guard.json"
    done = _bench(
        "bench_guard.py", "--smoke", "--backend", "bridge", "--no-hf", "--no-concurrent", "--batches", "1",
        "--json", str(path),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(path.read_text())
    assert result["settings"]["backend"] == "bridge" and result["headline"]["backend"] == "bridge"
    assert result["model"]["identity"]["backend"] == "bridge"
    assert result["headline"]["same_output"] is True
    assert "bridge backend" in done.stdout


def test_adapter_rejects_an_unknown_backend() -> None:
    done = _bench("bench_adapter.py", "--smoke", "--backends", "hf,nope")
    assert done.returncode != 0
    assert "--backends 'hf,nope'" in done.stderr and "hf, bridge" in done.stderr


@pytest.mark.slow
def test_guard_concurrent_row(smoke_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """The guard's concurrent row: 1, 2 and 4 threads on one model, every threaded result as sequential."""
    done, out = smoke_run
    guard = json.loads(next(out.glob("guard-tiny-*.json")).read_text())
    rows = guard["concurrent"]
    assert [row["threads"] for row in rows] == [1, 2, 4]
    for row in rows:
        assert not CONCURRENT_KEYS - set(row), f"concurrent row misses {CONCURRENT_KEYS - set(row)}"
        assert row["same_output"] is True and row["threaded_runs_checked"] >= 1
    assert guard["headline"]["concurrent_same_output"] is True
    assert set(guard["headline"]["concurrent_ratio_by_threads"]) == {"1", "2", "4"}
    assert "threaded / sequential throughput" in done.stdout


@pytest.mark.slow
def test_scaling_writes_growth_laws_and_figure(
    smoke_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """Every sweep has a fitted exponent, and the figure is a self-contained plotly HTML file beside the JSON."""
    _, out = smoke_run
    result = json.loads(next(out.glob("scaling-tiny-*.json")).read_text())
    sweeps = {row["sweep"] for row in result["rows"]}
    assert sweeps == {"samples", "image_tokens", "heads", "probe_n", "probe_heads"}
    for law in result["laws"]:
        assert law["points"] >= 2 and isinstance(law["alpha"], float), law
    html = sorted(out.glob("scaling-tiny-*.html"))
    assert len(html) == 1 and result["figure_html"] == html[0].name  # beside the JSON, no machine path
    text = html[0].read_text()
    assert "Plotly.newPlot" in text and "plotly.js v" in text, (
        "the figure must embed plotly.js (works offline)"
    )
    assert len(result["figure"]["data"]) >= 2 * len(sweeps)


@pytest.mark.slow
def test_the_serve_load_test_runs_and_its_verdicts_match(tmp_path: Path) -> None:
    """``bench_serve.py --smoke``: 4 clients x 3 s on the organism, with and without batching."""
    path = tmp_path / "serve.json"
    done = _bench("bench_serve.py", "--smoke", "--json", str(path))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(path.read_text())
    assert {r["max_batch"] for r in result["rows"]} == {1, 16} and all(r["requests"] > 0 for r in result["rows"])
    assert result["headline"]["errors"] == 0 and result["headline"]["verdicts differing from classify alone"] == 0
    assert {"p50_ms", "p95_ms", "p99_ms", "requests_per_s", "prefills"} <= set(result["rows"][0])
