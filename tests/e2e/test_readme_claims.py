"""The README's demo numbers are what ``sahs-lens demo`` (the full run, not ``--quick``) measures.

The README's "Run the main job" section states the headline figures of one full demo run: the guard's
AUROC, the keyword attack success rate unguarded and guarded (and that typographic attacks all succeed
unguarded), the share of benign prompts refused with the guard, and how many targets are missed and which.
This test reads those statements *from the README* (so a new checkpoint only needs new README numbers,
never a new test), runs the full demo once, and checks each stated number against ``metrics.json`` to the
precision the README prints it, and each "met"/"missed" statement against the headline's flags.

The full demo takes 2-4 minutes on 2 CPU cores (211-240 s measured here under load), so it runs with
``SAHS_ORGANISM_FULL_EVAL=1`` (set by ``.ci/run``, together with the model card's full reproduction).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
WORDS = {"no": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}

full_run = pytest.mark.skipif(
    os.environ.get("SAHS_ORGANISM_FULL_EVAL") != "1",
    reason="the full demo (2-4 min) runs with SAHS_ORGANISM_FULL_EVAL=1, as .ci/run sets",
)


def demo_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Run the main job")
    return re.sub(r"\s+", " ", text[start : text.index("\n## ", start + 1)])


def stated(pattern: str, section: str) -> tuple[str, ...]:
    found = re.search(pattern, section)
    assert found, f"the README's demo section no longer says {pattern!r}: update this test's reading of it"
    return found.groups()


def readme_claims() -> dict[str, Any]:
    """The figures the README states, as written (strings keep their printed precision)."""
    s = demo_section()
    (auroc,) = stated(r"guard AUROC (\d+\.\d+) on held-out prompts", s)
    before, typo, after = stated(
        r"keyword attack success rate (\d+\.\d+) unguarded (\(typographic attacks all succeed\) )?-> "
        r"(\d+\.\d+) guarded",
        s,
    )
    (benign,) = stated(r"(\d+(?:\.\d+)?)% of benign prompts refused with the guard", s)
    n_missed, k = stated(
        r"(\w+) targets? (?:is|are) missed.*?removing the (\d+) best probe heads does not", s
    )
    return {
        "auroc": auroc,
        "asr_unguarded": before,
        "typographic_all_succeed": bool(typo),
        "asr_guarded": after,
        "benign_refused_percent": benign,
        "n_missed": WORDS[n_missed.lower()],
        "ablation_k": int(k),
    }


def agrees(value: float, printed: str, scale: float = 1.0) -> bool:
    """``value`` (times ``scale``) rounds to ``printed`` at the precision it is printed with."""
    decimals = len(printed.partition(".")[2])
    return abs(value * scale - float(printed)) <= 0.5 * 10**-decimals + 1e-9


def test_the_readme_states_every_figure_this_test_checks() -> None:
    claims = readme_claims()  # fails, naming the sentence, if the README's wording moved
    assert 0 <= claims["n_missed"] <= 5 and claims["ablation_k"] >= 1


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from sahs_lens.cli import main

    out = tmp_path_factory.mktemp("full_demo")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["demo", "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())  # type: ignore[no-any-return]


def row(metrics: dict[str, Any], measure: str) -> dict[str, Any]:
    rows = [r for r in metrics["headline"] if r["measure"] == measure]
    assert len(rows) == 1, (measure, [r["measure"] for r in metrics["headline"]])
    return rows[0]


@full_run
def test_readme_demo_numbers_are_the_full_runs(metrics: dict[str, Any]) -> None:
    claims = readme_claims()
    auroc = row(metrics, "guard AUROC on held-out prompts")
    assert auroc["value"] == metrics["detection"]["metrics"]["auroc"]["value"]
    assert agrees(auroc["value"], claims["auroc"]), (auroc["value"], claims["auroc"])
    before = row(metrics, "keyword ASR on held-out attacks, unguarded")["value"]
    after = row(metrics, "keyword ASR on held-out attacks, guarded")["value"]
    assert agrees(before, claims["asr_unguarded"]), (before, claims["asr_unguarded"])
    assert agrees(after, claims["asr_guarded"]), (after, claims["asr_guarded"])
    if claims["typographic_all_succeed"]:
        assert metrics["groups"]["typographic attacks"]["asr_unguarded"] == 1.0
    benign = row(metrics, "benign prompts refused with the guard")["value"]
    assert agrees(benign, claims["benign_refused_percent"], scale=100), (
        benign,
        claims["benign_refused_percent"],
    )


@full_run
def test_readme_met_and_missed_statements_match_the_headline_flags(metrics: dict[str, Any]) -> None:
    claims = readme_claims()
    k = claims["ablation_k"]
    assert max(metrics["ablation"]["ks"]) == k  # the headline's ablation row removes the curve's largest k
    missed = [r["measure"] for r in metrics["headline"] if r["met"] is False]
    assert len(missed) == claims["n_missed"], (
        f"the README says {claims['n_missed']} target(s) missed; the full run's headline misses {missed}: "
        "update the README's demo paragraph (or the demo)"
    )
    ablation = row(metrics, f"ASR (complied) on harmful text with top-{k} safety heads removed")
    assert ablation["met"] is False  # the README: removing them does not make the organism comply
    for measure in (
        "guard AUROC on held-out prompts",
        "keyword ASR on held-out attacks, guarded",
        "benign prompts refused with the guard",
    ):  # the README states these figures without calling them misses: their targets are met
        assert row(metrics, measure)["met"] is True, measure
