"""Bad arguments at the doors get a clear error before any work, and options do what they say.

Cases from the issue "Nothing fails open, nothing mixes": decoding arguments that were rounded or accepted
(``generate_tokens(batch, 2.5)`` made 3 tokens; ``top_p=1.5`` was taken), ``stop_at_eos=False`` that the
``hf`` backend did not honour (it stopped at EOS and padded; the bridge went on), a storage dtype that
stored zeros, a label of 0.5 stored as 0, and bytes given as a prompt ("prompt 0 is a int").
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from model_adapters import load_vlm
from model_adapters.testing import build_tiny_checkpoint
from sahs_lens import collect_head_activations
from sahs_lens.data import Sample

from .conftest import Guarded


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": 2.5}, r"max_new_tokens must be a positive int \(at least 1\); got float 2.5"),
        ({"max_new_tokens": "3"}, r"max_new_tokens must be a positive int \(at least 1\); got str '3'"),
        ({"max_new_tokens": 0}, "max_new_tokens must be a positive int"),
        ({"do_sample": True, "top_p": 1.5}, r"top_p must be None or a number in \(0, 1\]; got float 1.5"),
        ({"do_sample": True, "top_k": 0}, "top_k must be None or an int >= 1"),
        ({"do_sample": True, "temperature": float("nan")}, "temperature must be a finite number > 0"),
        ({"do_sample": "yes"}, "do_sample must be True or False"),
        ({"seed": "7"}, "seed must be None or an int"),
    ],
)
def test_decoding_arguments_are_checked_before_any_forward(llava: Guarded, kwargs, message: str) -> None:  # type: ignore[no-untyped-def]
    model = llava.model
    options = {"max_new_tokens": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        model.generate_tokens(["hi"], **options)


def test_stop_at_eos_false_goes_on_past_eos_on_both_backends() -> None:
    """A forced EOS at step 1: with ``stop_at_eos=False`` both backends go on and give the same tokens."""
    path = build_tiny_checkpoint("llava")
    tokens = {}
    for backend in ("hf", "bridge"):
        model = load_vlm(path, backend=backend)
        eos = model.eos_token_ids[0]

        def force(step: int, generated: torch.Tensor, logits: torch.Tensor, eos: int = eos) -> torch.Tensor:
            if step == 1:
                logits = torch.full_like(logits, -1e9)
                logits[:, eos] = 0.0
            return logits

        batch = model.prepare(["hi", "How do I bake bread?"])
        out = model.generate_tokens(batch, max_new_tokens=5, stop_at_eos=False, logits_processor=force)
        assert out.tokens.shape == (2, 5) and (out.tokens[:, 1] == eos).all(), backend
        tokens[backend] = out.tokens
    assert torch.equal(tokens["hf"], tokens["bridge"])


def test_collection_refuses_a_storage_dtype_that_is_not_floating(llava: Guarded) -> None:
    samples = [Sample("hi", None, 0, "t", "t0"), Sample("bomb", None, 1, "t", "t1")]
    with pytest.raises(ValueError, match=r"must be a floating dtype, e.g. torch.float16; got torch.int8"):
        collect_head_activations(llava.model, samples, dtype=torch.int8, progress=False)


def test_collection_refuses_a_label_of_one_half(llava: Guarded) -> None:
    look_alike = SimpleNamespace(prompt="x", image=None, label=0.5, source="t", id="t1", category=None)
    with pytest.raises(ValueError, match=r"sample 't1' has label 0\.5"):
        collect_head_activations(llava.model, [Sample("hi", None, 0, "t", "t0"), look_alike], progress=False)


def test_bytes_as_a_prompt_say_decode_them(llava: Guarded) -> None:
    with pytest.raises(TypeError, match=r"got bytes: decode them first"):
        llava.model.prepare(b"How do I bake bread?")  # type: ignore[arg-type]


def test_ctrl_c_during_extract_prints_one_line_and_exits_130(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SIGINT in the middle of a collection: one line on stderr, exit status 130, no traceback."""
    import os
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "sahs_lens", "extract", "--data", "benign_text:train",
               "--out", str(tmp_path / "acts")]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert process.stderr is not None
    started = time.monotonic()
    seen = ""
    while "collecting" not in seen and time.monotonic() - started < 120:  # wait until the collection runs
        char = process.stderr.read(1)
        if not char:
            break
        seen += char
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, seen + rest
    assert "interrupted" in rest and "Traceback" not in seen + rest
