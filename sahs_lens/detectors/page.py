"""``compare.html``: a comparison on one offline page (heat map, ROC curves per pair, cost against AUROC).

The page is drawn from ``compare.json``'s dictionary alone (``write_compare_page(out, data)``), with the
results table, the sets and what each detector chose; like the demo's report it embeds plotly.js and fetches
nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sahs_lens.plotting.compare import auroc_heatmap, cost_figure, roc_curves
from sahs_lens.report import write_report

__all__ = ["write_compare_page"]

_COLUMNS = ("detector", "train", "test", "auroc", "auroc_ci", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr",
            "fpr_at_threshold", "tpr_at_threshold", "extra_forwards", "ms_per_prompt", "transfer", "note")  # fmt: skip


def _cell(value: Any) -> Any:
    if value is None:
        return "n/a"
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:.3f}" for v in value) + "]"
    return value


def write_compare_page(
    out: str | Path, data: Mapping[str, Any], headline: list[dict[str, Any]] | None = None
) -> Path:
    """Write ``out/compare.html`` from a comparison's dictionary; returns its path."""
    out = Path(out)
    figures = {"AUROC by detector and pair": auroc_heatmap(data)}
    captions = {
        "AUROC by detector and pair": "Each cell: the AUROC of a detector (row) trained on one set and tested on "
        "another (column); 0.5 is chance, T marks transfer pairs (malicious prompts of a source or modality "
        "the training set lacks), n/a a test set with one class (AUROC undefined)."
    }
    seen_tests: set[str] = set()
    for r in data["results"]:
        key = (r["train"], r["test"])
        if r["test"] in seen_tests and not r.get("transfer"):
            continue
        title = f"ROC: {key[0]} -> {key[1]}"
        if title in figures or r.get("roc") is None:
            continue
        seen_tests.add(r["test"])
        figures[title] = roc_curves(data, *key)
        captions[title] = (
            f"Every detector trained on {key[0]!r}, on the {r['n_positive']} malicious and {r['n_negative']} benign "
            f"prompts of {key[1]!r}{' (transfer)' if r.get('transfer') else ''}; the legend gives each AUROC."
        )
    figures["Cost against AUROC"] = cost_figure(data)
    captions["Cost against AUROC"] = (
        "Each detector's mean AUROC over the pairs against the time it adds per prompt on top of the prefill "
        "forward the model runs anyway (scoring, the logit lens, or a whole answer for model_refusal); bigger "
        "markers need extra forward passes."
    )
    rows = [{c: _cell(r.get(c)) for c in _COLUMNS} for r in data["results"]]
    sets = [{"set": name, **{k: _cell(v) if not isinstance(v, list) else ", ".join(v) for k, v in info.items()}}
            for name, info in data.get("sets", {}).items()]  # fmt: skip
    chosen = [{"detector@train": k, "chose": {a: b for a, b in v.items() if a != "thresholds"}}
              for k, v in data.get("chosen", {}).items()]  # fmt: skip
    timing = data.get("timing", {})
    provenance = {
        "model": data.get("settings", {}).get("model", {}).get("model_name", "none"),
        "detectors": ", ".join(data["detectors"]),
        "settings": {k: v for k, v in data.get("settings", {}).items() if k not in ("model", "pairs")},
        "prefill ms per prompt": timing.get("prefill", "n/a"),
        "wall time (s)": timing.get("total_s", "n/a"),
    }
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".compare-page-") as tmp:
        written = write_report(
            tmp,
            title="Detectors side by side",
            intro="Every detector trained on the same training set and scored on every test set, from one prefill "
            "forward per prompt; AUROC with a bootstrap 95% interval, TPR at 1% and 5% FPR, the false-positive "
            "rate at the threshold calibrated on the training side, and the cost per prompt.",
            provenance=provenance,
            headline=headline or [],
            headline_title="Headline" if headline else "Headline (none given)",
            figures=figures,
            captions=captions,
            tables={"Results": rows, "Sets": sets, "What each detector chose": chosen},
        )
        target = out / "compare.html"
        shutil.move(str(written), target)
    return target
