"""One self-contained HTML report (plus ``metrics.json``) of a run.

The report is what a reader opens first: the provenance of the run, a table of headline numbers, every
figure with its caption, and examples of guarded and unguarded answers. It works offline: plotly.js is
embedded once in the page (never fetched), and each figure is a ``<div>`` that draws itself from inline JSON.
Every figure must come with a caption (``write_report`` refuses one without). A table cell holding a
``Verdict`` is coloured by whether the outcome was right (green) or wrong (red), whatever its text says.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .92rem; }
td, th { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1a7f37; font-weight: 600; } .miss { color: #b42318; font-weight: 600; }
.figure { margin: 1rem 0 2rem; } .caption { color: #555; font-size: .9rem; }
details { margin: .3rem 0; } code, pre { background: #f6f8fa; padding: .1rem .3rem; border-radius: 3px; }
pre { white-space: pre-wrap; }
"""


@dataclass(frozen=True)
class Verdict:
    """A table cell that states an outcome (``text``) and is coloured by whether it was right (``good``).

    Example: a benign prompt the guard let pass is ``Verdict("passed", good=True)`` (green), a malicious
    prompt it let pass ``Verdict("passed", good=False)`` (red).
    """

    text: str
    good: bool


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return html.escape(str(value))


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c, "")
            css = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            if isinstance(value, Verdict):
                value_html = (
                    f'<span class="{"ok" if value.good else "miss"}">{html.escape(value.text)}</span>'
                )
            elif isinstance(value, bool):
                value_html = f'<span class="{"ok" if value else "miss"}">{"yes" if value else "no"}</span>'
            else:
                value_html = _fmt(value)
            cells.append(f"<td{css}>{value_html}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_report(
    out_dir: str | Path,
    *,
    title: str,
    provenance: Mapping[str, Any],
    headline: Sequence[Mapping[str, Any]],
    figures: Mapping[str, go.Figure],
    captions: Mapping[str, str] | None = None,
    examples: Sequence[Mapping[str, Any]] = (),
    metrics: Mapping[str, Any] | None = None,
    tables: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    intro: str | None = None,
    examples_title: str = "Examples of guarded and unguarded answers",
    headline_title: str = "Headline",
) -> Path:
    """Write ``report.html`` (and ``metrics.json`` when ``metrics`` is given) into ``out_dir``.

    Args:
        out_dir: the run's output directory (created if missing).
        title: page title.
        provenance: key/value facts about the run (model, checkpoint, data, seeds, versions).
        headline: rows of the headline table (e.g. ``{"measure": ..., "value": ..., "target": ..., "met": True}``).
        figures: ``{section title: plotly Figure}``, drawn in order.
        captions: one-paragraph caption per figure title; every figure needs one.
        examples: rows of example prompts and answers (a ``Verdict`` cell is coloured right / wrong).
        metrics: everything numeric, written as ``metrics.json``.
        tables: more ``{section title: rows}``, drawn after the provenance.
        intro: a paragraph under the title (what the run is).
        examples_title: the heading of the examples table.
        headline_title: the heading of the headline table.

    Returns:
        The path of ``report.html``.

    Raises:
        ValueError: a figure has no caption.
    """
    out = Path(out_dir)
    captions = captions or {}
    missing = [name for name in figures if not captions.get(name)]
    if missing:
        raise ValueError(f"every figure of a report needs a caption; none for: {', '.join(missing)}")
    out.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(intro)}</p>" if intro else "",
        f"<h2>{html.escape(headline_title)}</h2>",
        _table(headline),
        "<h2>Provenance</h2>",
        _table(
            [
                {"field": k, "value": v if not isinstance(v, (dict, list)) else json.dumps(v)}
                for k, v in provenance.items()
            ]
        ),
    ]
    for name, rows in (tables or {}).items():
        parts.append(f"<h2>{html.escape(name)}</h2>{_table(rows)}")
    for name, figure in figures.items():
        fig_html = figure.to_html(full_html=False, include_plotlyjs=False, default_height="460px")
        caption = f"<p class='caption'>{html.escape(captions[name])}</p>"
        parts.append(f"<div class='figure'><h2>{html.escape(name)}</h2>{caption}{fig_html}</div>")
    if examples:
        parts.append(f"<h2>{html.escape(examples_title)}</h2>")
        parts.append(_table(examples))
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    if metrics is not None:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default) + "\n")
    return path


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)
