"""A newcomer's first run, as CI does it: the README's commands in the environment they installed.

Run after the README's install, in that environment (``.ci/run`` does, in a fresh virtual environment):

    python scripts/newcomer_path.py --out ci_artifacts/newcomer

It times ``sahs-lens --help``, runs ``sahs-lens demo --quick``, opens the report in headless Chromium and
fails on a console error or an empty figure, and saves screenshots of the report's top and of every figure
under ``--out`` (CI artifacts; not committed). Exit status 0 means a newcomer's path works.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from report_check import FLAGS, check_report, chromium  # noqa: E402


def _run(command: list[str], timeout: float) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return time.perf_counter() - started


def _screenshot(browser: str, page: Path, png: Path, height: int = 1000) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size=1280,{height}",
             f"--screenshot={png}", page.as_uri()],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
    if not png.is_file() or png.stat().st_size == 0:
        raise SystemExit(f"chromium wrote no screenshot of {page}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "ci_artifacts" / "newcomer")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cli = str(Path(sys.executable).with_name("sahs-lens"))

    help_s = _run([cli, "--help"], timeout=60)
    print(f"sahs-lens --help: {help_s:.2f} s")
    demo_s = _run([cli, "demo", "--quick", "--out", str(out / "demo")], timeout=1800)
    print(f"sahs-lens demo --quick: {demo_s:.0f} s")

    report = out / "demo" / "report.html"
    result = check_report(report)
    print(f"report: {result['figures']} figures, empty {result['empty']}, console errors {result['errors']}")
    if result["errors"] or result["empty"] or not result["figures"]:
        raise SystemExit("the report does not open cleanly in headless Chromium")

    browser = chromium()
    assert browser is not None  # check_report needed it too
    shots = out / "screenshots"
    shots.mkdir(exist_ok=True)
    _screenshot(browser, report, shots / "report_top.png", height=1400)
    import plotly.io as pio

    index = json.loads((out / "demo" / "figures" / "index.json").read_text())
    for i, entry in enumerate(index):
        figure = pio.from_json((out / "demo" / "figures" / Path(entry["file"]).name).read_text())
        page = shots / f"figure_{i:02d}.html"
        page.write_text(pio.to_html(figure, include_plotlyjs=True, full_html=True), encoding="utf-8")
        _screenshot(browser, page, shots / f"figure_{i:02d}.png", height=800)
        page.unlink()
    print(f"screenshots: {len(index) + 1} PNGs in {shots}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
