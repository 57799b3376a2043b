"""Every command's ``--help`` example runs as written on the bundled organism, in an empty directory.

The examples are read out of the help text itself (the lines under ``EXAMPLE_HEADING``, continuation
lines joined), run in the order they depend on each other (``help_text.CHAIN``) through ``main``, and each
must succeed and write what it says. The GPU line of each command is parsed the same way (it must name a
LLaVA run) but not run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

import pytest

from sahs_lens.cli import build_parser, main
from sahs_lens.cli.help_text import CHAIN, EXAMPLE_HEADING, GPU_HEADING


def _leaf_parsers(parser: argparse.ArgumentParser, path: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every command and action (``"guard fit"``) -> its parser."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{path} {name}".strip()
                found[full] = sub
                found.update(_leaf_parsers(sub, full))
    return found


def _examples(help_text: str, heading: str) -> list[str]:
    """The commands under ``heading`` in a help text, with shell continuation lines joined."""
    lines = help_text.splitlines()
    prefix = heading.removesuffix("):")  # the heading may say which examples come first: "..., after ...):"
    starts = [i for i, line in enumerate(lines) if line.startswith(prefix) and line.endswith("):")]
    if not starts:
        return []
    commands: list[str] = []
    joined = ""
    for line in lines[starts[0] + 1 :]:
        if not line.startswith("  "):
            break
        joined += " " + line.strip().removesuffix("\\").strip()
        if not line.rstrip().endswith("\\"):
            commands.append(joined.strip())
            joined = ""
    return commands


PARSERS = _leaf_parsers(build_parser())
EXAMPLES = {name: _examples(p.format_help(), EXAMPLE_HEADING) for name, p in PARSERS.items()}


def test_every_command_has_an_organism_example_and_the_chain_orders_them_all() -> None:
    assert set(PARSERS) >= {"demo", "extract", "probe", "ablate", "patch", "guard fit", "guard eval"}
    assert {name for name, lines in EXAMPLES.items() if not lines} == set()
    assert sorted(CHAIN) == sorted(PARSERS), "help_text.CHAIN must list every command once"
    order = ", ".join(name for name in CHAIN if name not in ("organism", "guard"))
    assert order in " ".join(build_parser().format_help().split()), "sahs-lens --help must give the order"
    for name, lines in EXAMPLES.items():
        for line in lines:
            assert line.startswith(f"sahs-lens {name}"), line
            assert "cuda" not in line and "llava-hf" not in line, f"{name}: the organism example needs a GPU"


def test_gpu_lines_show_the_same_command_on_llava() -> None:
    for name, parser in PARSERS.items():
        for line in _examples(parser.format_help(), GPU_HEADING):
            assert line.startswith(f"sahs-lens {name}") and "llava" in line, line
            if "--model" in line:
                assert "--model llava-hf/llava-1.5-7b-hf --device cuda" in line, line


@pytest.mark.slow
def test_every_example_runs_as_written(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    timings: dict[str, float] = {}
    outputs: dict[str, str] = {}
    for name in CHAIN:
        for line in EXAMPLES[name]:
            argv = shlex.split(line)
            assert argv[0] == "sahs-lens"
            started = time.perf_counter()
            try:
                code = main(argv[1:])
            except SystemExit as exit_:  # --help lines exit through argparse
                code = int(exit_.code or 0)
            captured = capsys.readouterr()
            timings[line] = time.perf_counter() - started
            assert code == 0, f"{line}\nexit {code}\n{captured.out[-2000:]}\n{captured.err[-2000:]}"
            outputs[line] = captured.out
    with capsys.disabled():
        print("\n" + "\n".join(f"  {seconds:5.1f} s  {line}" for line, seconds in timings.items()))

    # each example wrote what it says, and what it printed reads as the help promises
    assert (tmp_path / "sahs_out" / "report.html").is_file()
    assert (tmp_path / "my_organism" / "model.safetensors").is_file()
    assert (tmp_path / "runs" / "acts" / "manifest.json").is_file()
    assert len(json.loads((tmp_path / "runs" / "probe" / "heads.json").read_text())["heads"]) == 8
    ablation = next(out for line, out in outputs.items() if line.startswith("sahs-lens ablate"))
    assert "nothing removed (baseline)" in ablation and "utility" in ablation
    assert (tmp_path / "runs" / "patch" / "patching.json").is_file()
    metrics = json.loads((tmp_path / "runs" / "guard_eval.json").read_text())["metrics"]
    # the organism reads its own drawings of the FigStep requests: the guard tells them apart
    assert metrics["auroc"]["value"] >= 0.9
    generated = [out for line, out in outputs.items() if line.startswith("sahs-lens generate")]
    assert "allowed" in generated[0] and "FLAGGED" in generated[1]
