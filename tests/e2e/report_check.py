"""Open an HTML report in headless Chromium and report console errors, empty figures, and figures without
a caption or without a title and both axis titles."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message)));
const __consoleError = console.error;
console.error = (...args) => { window.__errors.push(args.join(' ')); __consoleError(...args); };
window.addEventListener('load', () => setTimeout(() => {
  const figures = Array.from(document.querySelectorAll('.js-plotly-plot'));
  const size = t => ['x', 'y', 'z', 'values'].map(k => (t[k] && t[k].length) || 0).reduce((a, b) => Math.max(a, b), 0);
  const empty = figures.filter(f => !f._fullData || f._fullData.length === 0 || f._fullData.every(t => size(t) === 0))
    .map(f => (f.closest('.figure')?.querySelector('h2')?.textContent) || f.id);
  const title = f => (f.closest('.figure')?.querySelector('h2')?.textContent) || f.id;
  const uncaptioned = figures.filter(f => !(f.closest('.figure')?.querySelector('.caption')?.textContent || '').trim())
    .map(title);
  const unlabelled = figures.filter(f => !f.layout || !(f.layout.title?.text) || !(f.layout.xaxis?.title?.text)
    || !(f.layout.yaxis?.title?.text)).map(title);
  const out = document.createElement('pre'); out.id = 'sahs-check';
  out.textContent = JSON.stringify({figures: figures.length, empty: empty, uncaptioned: uncaptioned,
    unlabelled: unlabelled, errors: window.__errors});
  document.body.appendChild(out);
}, 500));
</script>"""

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=15000",
]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def check_report(report: Path) -> dict[str, object]:
    """``{"figures": n, "empty": [titles], "uncaptioned": [titles], "unlabelled": [titles], "errors": [...]}``
    as seen by a real browser (a figure is unlabelled without a title and both axis titles)."""
    browser = chromium()
    if browser is None:
        raise RuntimeError("no chromium on PATH; install Debian's chromium package (.ci/run does)")
    html = report.read_text(encoding="utf-8").replace("<body>", "<body>" + _PROBE, 1)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        done = subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={tmp}/profile", "--dump-dom", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
    match = re.search(r'<pre id="sahs-check">(.*?)</pre>', done.stdout, flags=re.DOTALL)
    if match is None:
        raise RuntimeError(f"the page did not finish loading in chromium; stderr:\n{done.stderr[-2000:]}")
    result: dict[str, object] = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    result["errors"] = list(result["errors"]) + console  # type: ignore[call-overload]
    return result
