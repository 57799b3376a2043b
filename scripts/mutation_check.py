"""Mutation check: plant each known bug in a copy of the code and require the named tests to catch it.

A test suite is only as good as the bugs it can see. ``mutations/mutations.toml`` lists plausible bugs in
the critical functions (the decision position, the guard's threshold direction, the probe intercept, the
stable criterion, left padding, the ablation slice, the calibration quantile, the provenance comparison,
the resume check), each as one exact source replacement and the tests that must fail when it is applied.

For each mutation the harness

1. copies the repository (the files git tracks or would track; without git, the tree minus caches) to a
   temporary directory, once;
2. restores the file to its original text and replaces the mutation's ``anchor`` with its ``replace``; the
   anchor must occur **exactly once** in the file, or the harness stops with an error naming it (the
   code moved: refresh the anchor, ``--check-anchors`` checks them all in a second);
3. runs the mutation's ``tests`` with pytest in the copy (``PYTHONPATH`` points at the copy, and the harness
   checks that the copy's packages are the ones imported);
4. calls the mutation *killed* when at least one of those tests fails, and *survived* when they all pass.

Before any mutation, the union of all listed tests runs on the unmutated copy and must pass: a test that
fails anyway kills nothing. A pytest run that collects no test, or exits with a usage or internal error,
is a harness error, never a kill.

The report (each mutation, the tests that killed it, time taken) is written as Markdown and JSON
(``--report``, default ``mutations/REPORT.md`` and ``mutations/REPORT.json``). The exit status is 0 only if
every mutation was killed.

Usage::

    python scripts/mutation_check.py                    # every mutation, report to mutations/REPORT.md
    python scripts/mutation_check.py --only stable-criterion-ignores-std
    python scripts/mutation_check.py --check-anchors    # only check that every anchor matches once
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError as exc:  # Python 3.10
    raise SystemExit(
        "scripts/mutation_check.py needs Python 3.11 or later (it reads TOML with tomllib)"
    ) from exc

ROOT = Path(__file__).resolve().parents[1]
MUTATIONS = ROOT / "mutations" / "mutations.toml"
IGNORED_DIRS = {
    ".git",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "sahs_out",
    "ci_artifacts",
}
# pytest exit codes: 0 all passed, 1 some failed, 2 interrupted (e.g. a collection error), 3 internal
# error, 4 usage error, 5 no tests collected
KILLED_CODES = {1, 2}


class HarnessError(RuntimeError):
    """The harness cannot give a verdict (a stale anchor, a broken baseline, no tests collected)."""


@dataclass
class Mutation:
    name: str
    what: str
    file: str
    anchor: str
    replace: str
    tests: list[str]

    @classmethod
    def from_toml(cls, entry: dict[str, object]) -> Mutation:
        missing = [key for key in ("name", "what", "file", "anchor", "replace", "tests") if key not in entry]
        if missing:
            raise HarnessError(f"a mutation in {MUTATIONS.name} lacks {missing}: {entry}")
        tests = entry["tests"]
        if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
            raise HarnessError(f"mutation {entry['name']!r}: tests must be a non-empty list of pytest ids")
        if entry["anchor"] == entry["replace"]:
            raise HarnessError(f"mutation {entry['name']!r}: replace equals anchor, nothing would change")
        return cls(
            str(entry["name"]),
            str(entry["what"]),
            str(entry["file"]),
            str(entry["anchor"]),
            str(entry["replace"]),
            list(tests),
        )


@dataclass
class Outcome:
    name: str
    what: str
    file: str
    killed: bool
    killing_tests: list[str] = field(default_factory=list)
    n_tests: int = 0
    seconds: float = 0.0
    pytest_rc: int = 0


def load_mutations(path: Path = MUTATIONS) -> list[Mutation]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    mutations = [Mutation.from_toml(entry) for entry in data.get("mutation", [])]
    names = [m.name for m in mutations]
    if len(set(names)) != len(names):
        raise HarnessError(
            f"mutation names repeat in {path}: {sorted(n for n in names if names.count(n) > 1)}"
        )
    if not mutations:
        raise HarnessError(f"{path} lists no [[mutation]]")
    return mutations


def check_anchor(root: Path, mutation: Mutation) -> str:
    """The file's text, after checking that the anchor occurs in it exactly once."""
    path = root / mutation.file
    if not path.is_file():
        raise HarnessError(f"mutation {mutation.name!r}: {mutation.file} does not exist (was it moved?)")
    text = path.read_text(encoding="utf-8")
    count = text.count(mutation.anchor)
    if count != 1:
        raise HarnessError(
            f"mutation {mutation.name!r}: its anchor occurs {count} times in {mutation.file} (it must occur "
            f"exactly once); the code changed: update 'anchor' in {MUTATIONS.relative_to(ROOT)} to the current "
            f"line(s).\n  anchor: {mutation.anchor!r}"
        )
    return text


def _repo_files(root: Path) -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            check=True,
            capture_output=True,
        ).stdout
        return [Path(p) for p in out.decode().split("\0") if p and (root / p).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [
            p.relative_to(root)
            for p in root.rglob("*")
            if p.is_file() and not (set(p.relative_to(root).parts) & IGNORED_DIRS)
        ]


def copy_repo(root: Path, dest: Path) -> None:
    for rel in _repo_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


def _env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports_from(copy: Path) -> None:
    """The copy's packages, not an installed (e.g. editable) copy of them, must be what the tests import."""
    code = "import sahs_lens, model_adapters; print(sahs_lens.__file__); print(model_adapters.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=copy, env=_env(copy), capture_output=True, text=True
    )
    paths = out.stdout.split()
    if (
        out.returncode != 0
        or len(paths) != 2
        or not all(Path(p).resolve().is_relative_to(copy.resolve()) for p in paths)
    ):
        raise HarnessError(
            f"the copy's packages are not the ones imported (got {paths or out.stderr[-500:]}); mutations "
            "would be applied to code that the tests never run"
        )


def run_pytest(copy: Path, tests: list[str], timeout: float) -> tuple[int, list[str], int, str]:
    """``(exit code, failed test ids, number of tests run, output tail)``."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", "--no-header", *tests]
    try:
        proc = subprocess.run(cmd, cwd=copy, env=_env(copy), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"pytest ran past {timeout:.0f} s on {tests}") from exc
    output = proc.stdout + proc.stderr
    failed = sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.MULTILINE)))
    counts = re.findall(r"(\d+) (passed|failed|error|errors)", output.splitlines()[-1] if output else "")
    n = sum(int(c) for c, _ in counts)
    return proc.returncode, failed, n, output[-3000:]


def apply(copy: Path, mutation: Mutation, original: str) -> None:
    (copy / mutation.file).write_text(
        original.replace(mutation.anchor, mutation.replace, 1), encoding="utf-8"
    )


def run_all(
    mutations: list[Mutation], timeout: float, baseline: bool, log=print
) -> tuple[list[Outcome], float]:  # type: ignore[no-untyped-def]
    for m in mutations:
        check_anchor(ROOT, m)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sahs-mutation-") as tmp:
        copy = Path(tmp) / "repo"
        copy_repo(ROOT, copy)
        check_imports_from(copy)
        if baseline:
            union = list(dict.fromkeys(t for m in mutations for t in m.tests))  # in the list's order
            t0 = time.perf_counter()
            rc, failed, n, tail = run_pytest(copy, union, timeout)
            if rc != 0:
                raise HarnessError(
                    f"the killing tests do not pass on the unmutated code (exit {rc}, failed {failed}):\n{tail}"
                )
            log(f"baseline: {n} tests pass unmutated ({time.perf_counter() - t0:.1f} s)")
        outcomes = []
        for m in mutations:
            original = check_anchor(copy, m)
            apply(copy, m, original)
            t0 = time.perf_counter()
            try:
                rc, failed, n, tail = run_pytest(copy, m.tests, timeout)
            finally:
                (copy / m.file).write_text(original, encoding="utf-8")
            if rc not in (0, *KILLED_CODES):
                raise HarnessError(f"mutation {m.name!r}: pytest exited {rc} (not a test failure):\n{tail}")
            killed = rc != 0
            if killed and not failed:
                raise HarnessError(
                    f"mutation {m.name!r}: pytest exited {rc} but named no failing test:\n{tail}"
                )
            outcome = Outcome(m.name, m.what, m.file, killed, failed, n, time.perf_counter() - t0, rc)
            outcomes.append(outcome)
            verdict = f"killed by {len(failed)} of {n}" if killed else f"SURVIVED all {n} tests"
            log(f"{m.name}: {verdict} ({outcome.seconds:.1f} s)")
    return outcomes, time.perf_counter() - start


def write_report(outcomes: list[Outcome], total: float, md_path: Path) -> None:
    survived = [o.name for o in outcomes if not o.killed]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"
    lines = [
        "# Mutation check report",
        "",
        "Written by `python scripts/mutation_check.py` (the list: `mutations/mutations.toml`). Each mutation",
        "is one exact source replacement in a copy of the repository; it is *killed* when at least one of its",
        "listed tests fails. The listed tests first pass on the unmutated copy.",
        "",
        f"- {len(outcomes) - len(survived)} of {len(outcomes)} mutations killed"
        + (f"; **survived: {', '.join(survived)}**" if survived else ""),
        f"- total time {total:.1f} s ({machine}, Python {platform.python_version()})",
        "",
        "| mutation | what it plants | file | killed | tests that killed it (of those run) | time |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        killers = "<br>".join(f"`{t}`" for t in o.killing_tests) or "none"
        lines.append(
            f"| `{o.name}` | {o.what} | `{o.file}` | {'yes' if o.killed else '**no**'} | "
            f"{killers} ({len(o.killing_tests)} of {o.n_tests}) | {o.seconds:.1f} s |"
        )
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    payload = {
        "total_seconds": round(total, 1),
        "machine": machine,
        "killed": len(outcomes) - len(survived),
        "n_mutations": len(outcomes),
        "survived": survived,
        "mutations": [o.__dict__ | {"seconds": round(o.seconds, 1)} for o in outcomes],
    }
    md_path.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutations")
    parser.add_argument("--check-anchors", action="store_true", help="only check every anchor matches once")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the tests")
    parser.add_argument("--report", type=Path, default=ROOT / "mutations" / "REPORT.md")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per pytest run")
    args = parser.parse_args(argv)
    try:
        mutations = load_mutations()
        if args.only:
            unknown = sorted(set(args.only) - {m.name for m in mutations})
            if unknown:
                raise HarnessError(f"unknown mutation(s) {unknown}; known: {[m.name for m in mutations]}")
            mutations = [m for m in mutations if m.name in args.only]
        if args.check_anchors:
            for m in mutations:
                check_anchor(ROOT, m)
            print(f"all {len(mutations)} anchors match exactly once")
            return 0
        outcomes, total = run_all(mutations, args.timeout, baseline=not args.no_baseline)
    except HarnessError as exc:
        print(f"mutation check error: {exc}", file=sys.stderr)
        return 2
    write_report(outcomes, total, args.report)
    survived = [o.name for o in outcomes if not o.killed]
    print(
        f"{len(outcomes) - len(survived)} of {len(outcomes)} mutations killed in {total:.1f} s; report: {args.report}"
    )
    if survived:
        print(f"SURVIVED: {', '.join(survived)}: the suite cannot see these bugs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
