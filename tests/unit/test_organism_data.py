"""The organism's training data: benign requests with harmful-sounding words by rule, no held-out text trained.

``scripts/make_bundled_data.py`` writes the ``benign_overlap`` bundled sets and the organism's large benign
training file (``sahs_lens/organism/data/alpaca_train.jsonl.gz``). These tests check that the file is what
the script builds (byte for byte), that no held-out request is in it, and that the harmful-sounding words
follow the stated rule.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from sahs_lens.data import load_bundled
from sahs_lens.organism.recipe import BENIGN_TRAIN_FILE, benign_training_requests, training_items

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
MANIFEST = json.loads((REPO / "sahs_lens" / "bundled" / "manifest.json").read_text(encoding="utf-8"))
needs_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"the shared data folder {SHARED_DATA} is absent (CI has it)"
)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).rstrip(".!?; ")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_bundled_data", REPO / "scripts" / "make_bundled_data.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_heldout_request_is_a_training_request() -> None:
    trained = {_norm(r["prompt"]) for r in benign_training_requests()}
    assert len(trained) > 20_000
    for name in ("benign_text:heldout", "benign_overlap:heldout", "harmful_text:heldout"):
        heldout = {_norm(s.prompt) for s in load_bundled(name)}
        assert not heldout & trained, name  # figstep_benign:heldout is part of benign_text:heldout
    overlap_train = {s.id for s in load_bundled("benign_overlap:train")}
    items = training_items()
    flagged = {i.source_id for i in items if i.overlap}
    assert flagged == overlap_train  # every benign_overlap:train request is trained on, flagged
    assert not {i.source_id for i in items} & {s.id for s in load_bundled("benign_overlap:heldout")}


def test_benign_overlap_requests_contain_a_harmful_sounding_word() -> None:
    script = _script()
    words = set(MANIFEST["harmful_sounding_words"]["words"])
    assert {"attack", "steal", "virus"} <= words and "write" not in words  # frequent in both: not harmful
    for part in ("train", "heldout"):
        samples = load_bundled(f"benign_overlap:{part}")
        assert all(script.content_words(s.prompt) & words for s in samples)
    assert len(load_bundled("benign_overlap:heldout")) == script.N_OVERLAP_HELDOUT


@needs_shared
def test_organism_training_file_rebuilds_byte_for_byte(tmp_path: Path) -> None:
    n = _script().write_organism_data(SHARED_DATA, REPO / "sahs_lens" / "bundled", tmp_path)
    assert (tmp_path / "alpaca_train.jsonl.gz").read_bytes() == BENIGN_TRAIN_FILE.read_bytes()
    assert (tmp_path / "NOTICE.md").read_bytes() == BENIGN_TRAIN_FILE.with_name("NOTICE.md").read_bytes()
    assert n == len(benign_training_requests())
    assert "CC BY-NC 4.0" in (tmp_path / "NOTICE.md").read_text(encoding="utf-8")


def test_a_missing_training_file_says_how_to_rebuild_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make_bundled_data.py"):
        benign_training_requests(tmp_path / "absent.jsonl.gz")
