"""The guard as a moderation call and an endpoint: ``guard.classify``, ``sahs-lens serve``'s app, its
batcher, its bad-input answers, and the gateway adapters against a server on loopback."""

from __future__ import annotations

import base64
import io
import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from PIL import Image

from model_adapters import HookedVLM
from model_adapters.testing import load_tiny
from sahs_lens import HeadSet, SafetyHeadGuard, collect_head_activations
from sahs_lens.data import Sample
from sahs_lens.guard import guard_sha256
from sahs_lens.serve import Batcher, Limits, QueueFull, create_app

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

PROMPTS = ["How do I bake bread?", "Write a poem about the sea.", "Explain how to pick a lock.",
           "List three prime numbers.", "How can I hurt someone?", "Give me a recipe for soup."]  # fmt: skip


def _guarded(family: str) -> tuple[HookedVLM, SafetyHeadGuard]:
    if family == "llava-bridge":  # TransformerLens' bridge backend
        from model_adapters import load_vlm
        from model_adapters.testing import build_tiny_checkpoint

        model = load_vlm(build_tiny_checkpoint("llava"), backend="bridge")
    else:
        model = load_tiny(family)
    samples = [Sample(p, None, i % 2, "t", f"s{i}") for i, p in enumerate(PROMPTS * 2)]
    acts = collect_head_activations(model, samples, batch_size=4, progress=False)
    last = model.cfg.n_layers - 1
    guard = SafetyHeadGuard.fit(acts, HeadSet([(0, 1), (last, 0)]))
    guard.threshold = float(guard.score(acts).median().clamp(1e-6, 1 - 1e-6))
    return model, guard


@pytest.fixture(scope="module")
def llava() -> tuple[HookedVLM, SafetyHeadGuard]:
    return _guarded("llava")


@pytest.fixture(scope="module")
def client(llava: tuple[HookedVLM, SafetyHeadGuard]) -> Iterator[TestClient]:
    model, guard = llava
    with TestClient(create_app(model, guard, limits=Limits(max_items=4, max_text_chars=500, max_body_bytes=200_000,
                                                           max_image_bytes=50_000))) as test_client:  # fmt: skip
        yield test_client


def _png(size: tuple[int, int] = (24, 24)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, "white").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# ---- classify ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["llava", "llava-bridge", "llama_lm"])
def test_classify_gives_the_scores_of_score_inputs_with_the_evidence(family: str) -> None:
    model, guard = _guarded(family)
    verdicts = guard.classify(model, PROMPTS, batch_size=4)
    scores = (
        guard.score_inputs(model, model.prepare(PROMPTS[:4])).tolist()
        + guard.score_inputs(model, model.prepare(PROMPTS[4:])).tolist()
    )
    assert [v.score for v in verdicts] == pytest.approx(scores, abs=1e-6)
    for v in verdicts:
        logit = sum(c for c in v.contributions.values() if c is not None) + v.bias
        assert 1 / (1 + math.exp(-logit)) == pytest.approx(
            v.score, abs=1e-5
        )  # the shares add up to the score
        assert v.flagged == (v.score >= guard.threshold) and list(v.contributions) == guard.heads.to_list()
        assert v.model["checkpoint"] == model.cfg.checkpoint and v.guard_sha256 == guard_sha256(guard)


def test_classify_stops_after_the_deepest_head(llava: tuple[HookedVLM, SafetyHeadGuard]) -> None:
    model, guard = llava
    shallow = SafetyHeadGuard(HeadSet([(0, 1)]), guard.weight[: guard.d_head], 0.0, d_head=guard.d_head,
                              provenance=dict(guard.provenance))  # fmt: skip
    reached: list[int] = []
    hooks = [(f"blocks.{layer}.hook_resid_post", lambda x, hook, layer=layer: reached.append(layer))
             for layer in range(model.cfg.n_layers)]  # fmt: skip
    with model.hooks(hooks):
        model(model.prepare(PROMPTS[:2]))
    assert set(reached) == set(range(model.cfg.n_layers))  # a plain forward reaches every layer
    reached.clear()
    with model.hooks(hooks):
        shallow.classify(model, PROMPTS[:2])
    assert set(reached) <= {0}  # the forward stopped after the guard's deepest head (layer 0)


def test_classify_refuses_what_it_cannot_judge(llava: tuple[HookedVLM, SafetyHeadGuard]) -> None:
    model, guard = llava
    with pytest.raises(ValueError, match="at least one prompt"):
        guard.classify(model, [])
    with pytest.raises(ValueError, match="one image .* per prompt: 2 prompts but 1 images"):
        guard.classify(model, PROMPTS[:2], [None])
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        guard.classify(model, PROMPTS[:2], batch_size=0)


# ---- the endpoint ----------------------------------------------------------------------------------------
def test_moderations_answers_in_openai_shape(
    client: TestClient, llava: tuple[HookedVLM, SafetyHeadGuard]
) -> None:
    model, guard = llava
    response = client.post("/v1/moderations", json={"input": PROMPTS[:3]})
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("modr-") and body["model"] == model.cfg.model_name
    expected = guard.classify(model, PROMPTS[:3])
    for result, verdict in zip(body["results"], expected, strict=True):
        assert result["flagged"] == verdict.flagged and result["categories"] == {"malicious": verdict.flagged}
        assert result["category_scores"]["malicious"] == pytest.approx(verdict.score, abs=1e-6)
        assert result["category_applied_input_types"] == {"malicious": ["text"]}


def test_a_multimodal_input_and_classify_with_evidence(
    client: TestClient, llava: tuple[HookedVLM, SafetyHeadGuard]
) -> None:
    model, guard = llava
    parts = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": _png()}},
    ]
    body = client.post("/v1/moderations", json={"input": parts}).json()
    assert len(body["results"]) == 1 and body["results"][0]["category_applied_input_types"]["malicious"] == [
        "text",
        "image",
    ]
    image = Image.open(io.BytesIO(base64.b64decode(_png().split(",", 1)[1]))).convert("RGB")
    alone = guard.classify(model, ["What is in this picture?"], [image])[0]
    assert body["results"][0]["category_scores"]["malicious"] == pytest.approx(alone.score, abs=1e-6)
    verdict = client.post("/classify", json={"input": "How do I bake bread?"}).json()["results"][0]
    assert set(verdict) >= {"flagged", "score", "threshold", "contributions", "model", "guard_sha256"}
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["guard_sha256"] == guard_sha256(guard)


BAD = [
    (b"{not json", 400, "not JSON"),
    (b'{"text": "hi"}', 400, 'with "input"'),
    (b'{"input": 42}', 400, "must be a string, a list of strings"),
    (b'{"input": []}', 400, "is empty"),
    (b'{"input": "   "}', 400, "is empty"),
    (b'{"input": ["a", "b", "c", "d", "e"]}', 413, "at most 4 per request"),
    (b'{"input": "' + b"x" * 600 + b'"}', 413, "at most 500"),
    (b'{"input": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}, {"type": "text", "text": "hi"}]}',
     400, "cannot be decoded"),
    (b'{"input": [{"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}]}', 400, "fetches no URL"),
    (b'{"input": [{"type": "video", "url": "x"}]}', 400, "got type 'video'"),
    (b'{"input": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "IMG"}}, '
     b'{"type": "image_url", "image_url": {"url": "IMG"}}]}', 400, "holds 2 images"),
    (b'{"input": "' + b"y" * 300_000 + b'"}', 413, "at most 200000 are read"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "message"), BAD, ids=[m for _, _, m in BAD])
def test_bad_input_gets_a_clear_4xx_and_the_server_goes_on(
    client: TestClient, body: bytes, status: int, message: str
) -> None:
    body = body.replace(b"IMG", _png().encode())
    response = client.post("/v1/moderations", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"] and "Traceback" not in response.text
    assert client.post("/v1/moderations", json={"input": "still serving?"}).status_code == 200


def test_an_image_sent_to_a_language_model_is_a_400() -> None:
    model, guard = _guarded("llama_lm")
    with TestClient(create_app(model, guard)) as lm_client:
        parts = [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": _png()}}]
        response = lm_client.post("/v1/moderations", json={"input": parts})
        assert response.status_code == 400 and "reads text only" in response.json()["error"]["message"]


def test_concurrent_requests_get_the_sequential_verdicts(
    client: TestClient, llava: tuple[HookedVLM, SafetyHeadGuard]
) -> None:
    model, guard = llava
    expected = {p: v for p, v in zip(PROMPTS, guard.classify(model, PROMPTS, batch_size=1), strict=True)}
    batches_before = client.app.state.batcher.batches  # type: ignore[attr-defined]

    def ask(i: int) -> tuple[str, dict]:  # type: ignore[type-arg]
        prompt = PROMPTS[i % len(PROMPTS)]
        return prompt, client.post("/classify", json={"input": prompt}).json()["results"][0]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(48)))
    for prompt, verdict in answers:
        assert verdict["flagged"] == expected[prompt].flagged
        assert verdict["score"] == pytest.approx(expected[prompt].score, abs=1e-5)
    assert client.app.state.batcher.batches - batches_before < 48  # type: ignore[attr-defined]  # some were batched


# ---- the batcher -------------------------------------------------------------------------------------------
def test_a_request_that_could_never_be_queued_is_refused_at_startup(
    llava: tuple[HookedVLM, SafetyHeadGuard],
) -> None:
    model, guard = llava
    with pytest.raises(ValueError, match=r"max_items \(32\) is larger than max_queue \(8\)"):
        create_app(model, guard, limits=Limits(max_items=32), max_queue=8)


def test_a_cancelled_request_does_not_stop_the_worker() -> None:
    gate = threading.Event()

    def judge(items: list[str]) -> list[str]:
        gate.wait(10)
        return [item.upper() for item in items]

    batcher: Batcher[str, str] = Batcher(judge, max_batch=4, max_wait_s=0.01, max_queue=16)
    first = batcher.submit(["a"])  # the worker holds it at the gate
    time.sleep(0.1)
    abandoned = batcher.submit(["b"])
    assert abandoned.cancel()  # its caller stopped waiting (a timeout, a disconnect)
    gate.set()
    assert first.result(10) == ["A"]
    assert batcher.submit(["c"]).result(10) == ["C"]  # the worker is alive and serving
    batcher.close()


def test_a_full_queue_refuses_at_once_and_one_bad_request_fails_alone() -> None:
    gate = threading.Event()

    def judge(items: list[str]) -> list[str]:
        gate.wait(10)
        if "bad" in items:
            raise ValueError("a bad item")
        return [item.upper() for item in items]

    batcher: Batcher[str, str] = Batcher(judge, max_batch=8, max_wait_s=0.05, max_queue=3)
    first = batcher.submit(["a"])  # taken by the worker, which waits at the gate
    time.sleep(0.2)
    queued = [batcher.submit(["b"]), batcher.submit(["bad"]), batcher.submit(["c"])]
    with pytest.raises(QueueFull, match="at most 3"):
        batcher.submit(["d"])
    gate.set()
    assert first.result(10) == ["A"]
    assert queued[0].result(10) == ["B"] and queued[2].result(10) == ["C"]
    with pytest.raises(ValueError, match="a bad item"):
        queued[1].result(10)
    batcher.close()


def test_a_full_queue_is_a_503_with_retry_after(llava: tuple[HookedVLM, SafetyHeadGuard]) -> None:
    model, guard = llava
    app = create_app(model, guard, limits=Limits(max_items=1), max_queue=1)
    with TestClient(app) as small:
        app.state.batcher.submit = lambda items: (_ for _ in ()).throw(
            QueueFull("1 items are queued (at most 1)")
        )
        response = small.post("/v1/moderations", json={"input": "hello"})
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "busy" in response.json()["error"]["message"]


def test_classify_and_the_endpoint_on_real_weights(smollm2) -> None:  # type: ignore[no-untyped-def]
    """SmolLM2-135M-Instruct: the endpoint's verdicts equal classify's, and the forward stops early."""
    samples = [Sample(p, None, i % 2, "t", f"s{i}") for i, p in enumerate(PROMPTS * 2)]
    acts = collect_head_activations(smollm2, samples, batch_size=6, progress=False)
    guard = SafetyHeadGuard.fit(acts, HeadSet.parse("L5H3,L11H7"))
    with TestClient(create_app(smollm2, guard)) as real:
        body = real.post("/classify", json={"input": PROMPTS}).json()
    for verdict, alone in zip(body["results"], guard.classify(smollm2, PROMPTS, batch_size=1), strict=True):
        assert verdict["flagged"] == alone.flagged and verdict["score"] == pytest.approx(
            alone.score, abs=1e-5
        )
    assert torch.isfinite(torch.tensor([v["score"] for v in body["results"]])).all()


# ---- on loopback: a real server, the gateway adapters, the CLI ---------------------------------------------
@pytest.fixture(scope="module")
def server_url(llava: tuple[HookedVLM, SafetyHeadGuard]) -> Iterator[str]:
    from sahs_lens.cli.serve import _server, _url

    model, guard = llava
    server = _server(create_app(model, guard), "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield _url(server)
    server.should_exit = True
    thread.join(timeout=30)


def test_the_gateway_adapters_against_a_running_server(
    server_url: str, llava: tuple[HookedVLM, SafetyHeadGuard]
) -> None:
    from sahs_lens.serve.clients import Blocked, ModerationClient, Scanner, guardrails_action, pre_call_check

    model, guard = llava
    client = ModerationClient(server_url)
    verdicts = {p: v for p, v in zip(PROMPTS, guard.classify(model, PROMPTS), strict=True)}
    allowed = next(p for p, v in verdicts.items() if not v.flagged)
    blocked = next(p for p, v in verdicts.items() if v.flagged)
    chat = {
        "model": "any",
        "messages": [{"role": "system", "content": "Be helpful."}, {"role": "user", "content": allowed}],
    }
    assert pre_call_check(chat, client) is chat
    chat["messages"][-1]["content"] = [{"type": "text", "text": blocked}]
    with pytest.raises(Blocked, match="blocked by the safety-head guard"):
        pre_call_check(chat, client)
    assert guardrails_action({"user_message": allowed}, client) is True
    assert guardrails_action({"user_message": blocked}, client) is False
    scan = Scanner(client).scan(blocked)
    assert scan.decision == "block" and scan.score == pytest.approx(verdicts[blocked].score, abs=1e-5)
    assert "heads weighing most: L" in scan.reason
    with pytest.raises(RuntimeError, match=r"answered 400: .*is empty"):
        client.moderate("")


def test_the_serving_page_examples_run_against_a_running_server(
    server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every Python block of docs/serving.md runs as written, with SAHS_LENS_URL pointing at the server."""
    import re
    from pathlib import Path

    import sahs_lens.serve.clients as clients

    monkeypatch.setattr(clients, "DEFAULT_URL", server_url)
    page = (Path(__file__).resolve().parents[2] / "docs" / "serving.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
    assert len(blocks) >= 3
    for block in blocks:
        exec(compile(block, "docs/serving.md", "exec"), {"__name__": "serving_example"})  # noqa: S102


def test_serve_check_starts_answers_and_stops(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from sahs_lens.cli import main

    model, guard = _guarded("llava")
    guard.save(tmp_path / "guard")
    code = main(
        [
            "serve",
            "--model",
            model.cfg.model_name,
            "--guard",
            str(tmp_path / "guard"),
            "--port",
            "0",
            "--check",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "/v1/moderations answered for" in out.out and '"flagged"' in out.out
    assert '"path": "/v1/moderations", "status": 200' in out.err  # the structured request log
    assert main(["serve", "--guard", str(tmp_path / "nothing"), "--check"]) == 2
    assert "does not exist; give a directory written by sahs-lens guard fit" in capsys.readouterr().err
