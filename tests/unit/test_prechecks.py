"""Input errors are answered before torch is imported: the paths a command was given are checked first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sahs_lens.cli.prechecks import PATH_KINDS

CASES = [
    (["probe", "--acts", "does/not/exist", "--out", "x"], "--acts does/not/exist does not exist"),
    (["guard", "fit", "--acts", ".", "--heads", "L0H0", "--out", "g"], "--acts . holds no manifest.json"),
    (["extract", "--data", "csv:nope.csv:prompt", "--out", "a"], "--data csv:nope.csv:prompt: nope.csv does not exist"),
    (["compare", "--test", "x=figstep:no/FigStep", "--out", "c"], "no/FigStep does not exist"),
    (["generate", "--guard", "nowhere", "--prompt", "hi"], "--guard nowhere does not exist"),
    (["generate", "--image", "nope.png", "--prompt", "hi"], "--image nope.png does not exist"),
    (["report", "--run", "nowhere"], "--run nowhere is not a directory"),
    (["ablate", "--heads", "runs/h.json", "--data", "harmful_text:train@2", "--out", "z"], "--heads runs/h.json does not exist"),
    (["ablate", "--heads", "L0H0", "--data", "harmful_text:train@2", "--mode", "mean", "--out", "z"], "give --reference DIR"),
]  # fmt: skip


def test_input_errors_are_answered_before_torch_is_imported(tmp_path: Path) -> None:
    script = (
        "import json, sys\nfrom sahs_lens.cli import main\nout = []\n"
        f"for argv in {json.dumps([argv for argv, _ in CASES])}:\n"
        "    out.append(main(argv))\n"
        "print(json.dumps({'codes': out, 'torch': 'torch' in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["codes"] == [2] * len(CASES), done.stderr
    assert result["torch"] is False, "a command imported torch before it checked its paths"
    for (argv, message), line in zip(CASES, done.stderr.strip().splitlines(), strict=True):
        assert message in line and line.startswith("sahs-lens "), (argv, line)


def test_the_path_kinds_are_the_spec_readers_kinds() -> None:
    from sahs_lens.data.spec import SPEC_FORMS

    assert set(PATH_KINDS) == set(SPEC_FORMS)


@pytest.mark.parametrize("spec", ["harmful_text:train@4", "parquet:foo"])
def test_specs_it_cannot_judge_are_left_to_the_reader(spec: str) -> None:
    from argparse import Namespace

    from sahs_lens.cli.prechecks import precheck

    precheck(Namespace(command="extract", data=[spec]))  # no error: bundled, or unknown (the reader names it)
