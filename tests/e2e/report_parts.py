"""A report page taken apart for comparison: its text without the figure calls, and each figure parsed.

Two builds of one report differ in the random ids of the figures' ``<div>`` and in the order of JSON keys
(a figure read back from its file has sorted keys); neither changes what a reader sees. ``report_parts``
returns what does: the page's text (figure calls cut out, div ids replaced) and every figure's data and
layout as parsed JSON, so two builds compare equal exactly when they show the same thing.
"""

from __future__ import annotations

import json
import re
from typing import Any

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
COMMA = re.compile(r"\s*,\s*")


def report_parts(page: str) -> tuple[str, list[list[Any]]]:
    """``(text, [[data, layout], ...])`` of a report page with plotly figures (``Plotly.newPlot`` calls)."""
    decoder = json.JSONDecoder()
    figures: list[list[Any]] = []
    pieces: list[str] = []
    start = 0
    for match in re.finditer(r"Plotly\.newPlot\(\s*", page):
        if match.start() < start:
            continue
        i = match.end()
        values = []
        for _ in range(3):  # the div id, the data, the layout
            value, i = decoder.raw_decode(page, i)
            values.append(value)
            comma = COMMA.match(page, i)
            assert comma is not None, page[i : i + 80]
            i = comma.end()
        figures.append(values[1:])
        pieces.append(page[start : match.start()])
        start = i
    pieces.append(page[start:])
    return UUID.sub("ID", "".join(pieces)), figures
