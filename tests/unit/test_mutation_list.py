"""The mutation list stays applicable: every anchor of ``mutations/mutations.toml`` matches its file once.

``scripts/mutation_check.py`` (run by ``.ci/run``) plants each listed bug in a copy of the repository and
requires its tests to fail. An anchor that no longer matches (the code was edited) would stop that check;
this test says so at once, in the ordinary test run, naming the mutation to refresh.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _harness():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("mutation_check", ROOT / "scripts" / "mutation_check.py")
    assert spec is not None and spec.loader is not None
    if sys.version_info < (3, 11):
        pytest.skip("the mutation check reads TOML with tomllib (Python 3.11+); CI runs 3.11")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_every_anchor_matches_exactly_once_and_names_real_tests() -> None:
    harness = _harness()
    mutations = harness.load_mutations()
    names = {"decision", "threshold", "intercept", "stable", "padding", "ablation", "calibration", "identity",
             "resume"}  # fmt: skip
    assert all(any(word in m.name for m in mutations) for word in names)  # the list is covered
    for m in mutations:
        harness.check_anchor(ROOT, m)
        for test in m.tests:
            path, _, name = test.partition("::")
            source = (ROOT / path).read_text(encoding="utf-8")
            if name:
                assert re.search(rf"^def {re.escape(name.split('[')[0])}\(", source, re.MULTILINE), test


def test_a_stale_anchor_stops_the_harness(tmp_path: Path) -> None:
    harness = _harness()
    m = harness.load_mutations()[0]
    (tmp_path / m.file).parent.mkdir(parents=True)
    (tmp_path / m.file).write_text("nothing to see here\n")
    with pytest.raises(harness.HarnessError, match="occurs 0 times"):
        harness.check_anchor(tmp_path, m)
    (tmp_path / m.file).write_text(m.anchor + "\n" + m.anchor + "\n")
    with pytest.raises(harness.HarnessError, match="occurs 2 times"):
        harness.check_anchor(tmp_path, m)
