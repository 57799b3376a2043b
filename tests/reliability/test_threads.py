"""Concurrent use gives sequential results: 4 threads x 2 guards x 25 calls on one model.

Hugging Face serving code runs requests in threads. Hooks live on the model object, so without the
model's lock one thread's forward would run another thread's hooks (wrong scores, rows left unflagged,
state read from the wrong call). Every call below must equal the same call made alone.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from .conftest import PROMPTS, Guarded, count_hooks, is_real

THREADS, CALLS = 4, 25


def _work(llava: Guarded, calls: int = CALLS):  # type: ignore[no-untyped-def]
    """The list of (kind, guard index, batch) calls: scoring and guarded generation, mixed."""
    model = llava.model
    batches = [model.prepare(PROMPTS[i : i + 3]) for i in range(0, 6)]
    return [
        ("score" if c % 2 == 0 else "generate", g, batches[(c + g) % len(batches)])
        for c in range(calls)
        for g in (0, 1)
    ]


def _run(llava: Guarded, call):  # type: ignore[no-untyped-def]
    kind, g, batch = call
    guard = llava.guards[g]
    if kind == "score":
        return guard.score_inputs(llava.model, batch).tolist()
    out = guard.generate(llava.model, batch, max_new_tokens=3)
    return (out.texts, out.flagged, out.scores)


def test_threads_share_a_model_and_get_sequential_results(llava: Guarded) -> None:
    _same_under_threads(llava, _work(llava))


def test_threads_on_language_models_get_sequential_results(language_model: Guarded) -> None:
    """The same on the text families and on SmolLM2's real weights (fewer calls there: 2 CPU cores)."""
    _same_under_threads(language_model, _work(language_model, calls=4 if is_real(language_model) else CALLS))


def _same_under_threads(llava: Guarded, work: list) -> None:  # type: ignore[type-arg]
    expected = [_run(llava, call) for call in work]
    assert any(any(e[1]) for e in expected if isinstance(e, tuple))  # some rows are flagged
    start = threading.Barrier(THREADS)

    def worker(_: int):  # type: ignore[no-untyped-def]
        start.wait()
        return [(i, _run(llava, work[i])) for i in range(len(work))]  # every thread does all the work

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))
    for per_thread in results:
        for i, value in per_thread:
            assert value == expected[i], f"call {i} ({work[i][0]}, guard {work[i][1]}) differed under threads"
    assert count_hooks(llava.model) == llava.hooks


def test_attach_hf_sessions_in_threads_match_sequential(llava: Guarded) -> None:
    from transformers import AutoModelForImageTextToText

    model = llava.model
    hf = AutoModelForImageTextToText.from_pretrained(model.cfg.model_name, attn_implementation="eager")
    hf.eval()
    tok = model.tokenizer
    enc = tok([model.format_prompt(p, False) for p in PROMPTS[:4]], return_tensors="pt", padding=True)

    def session(g: int):  # type: ignore[no-untyped-def]
        guard = llava.guards[g]
        with guard.attach_hf(hf, tokenizer=tok) as s, torch.no_grad():
            out = hf.generate(**enc, max_new_tokens=3, do_sample=False, logits_processor=[s.logits_processor])
        return out.tolist(), s.flagged, s.scores

    expected = [session(i % 2) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(session, [i % 2 for i in range(8)]))
    assert got == expected
    assert sum(len(m._forward_pre_hooks) for m in hf.modules()) == 0
