"""The ``sahs-lens`` command: every stage of the method from the shell, on the bundled organism or any model.

Each subcommand reads and writes the artifacts of the Python API (activations directories, probe sweeps,
``heads.json``, guard directories), so stages can be chained, resumed and mixed with notebook work. On the
bundled organism (the default ``--model``), in an empty directory::

    sahs-lens demo --quick                                   # the whole story, with a report
    sahs-lens extract --data harmful_text:train@48 --data benign_text:train@48 --out runs/acts
    sahs-lens probe --acts runs/acts --out runs/probe --shots 1 2 4 8 --repeats 5 --k 8
    sahs-lens guard fit --acts runs/acts --heads runs/probe/heads.json --out runs/guard
    sahs-lens guard eval --guard runs/guard --data figstep_attack:heldout@48 --data figstep_benign:heldout@48
    sahs-lens generate --guard runs/guard --prompt "Give three tips for staying healthy."

Modules: ``parser`` (the commands and their options), ``help_text`` (the data-spec grammar, the examples),
``commands`` (one function per command), ``checks`` (options and outputs, checked before any work),
``loading`` (model, data specs drawn for the organism, head sets), ``threads`` (thread defaults set before
torch loads).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sahs_lens.cli.parser import build_parser
from sahs_lens.cli.prechecks import precheck
from sahs_lens.cli.threads import set_thread_defaults

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sahs-lens`` with ``argv`` (default: the process's); 0 on success, 2 on a usage error, 130 when
    interrupted (Ctrl-C: one line, no traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    name = " ".join(
        str(part) for part in (args.command, getattr(args, f"{args.command}_command", None)) if part
    )
    try:
        precheck(args)  # paths first, before torch and the model code are imported (seconds)
    except (FileNotFoundError, ValueError) as exc:
        print(f"sahs-lens {name}: error: {exc}", file=sys.stderr)
        return 2
    line = set_thread_defaults()
    if line:
        print(line, file=sys.stderr)
    try:
        return int(args.func(args))
    except (
        ValueError,
        FileNotFoundError,
        FileExistsError,
        ImportError,
    ) as exc:  # ImportError: a missing extra
        print(f"sahs-lens {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # one line, not a traceback; finished work is kept (extract resumes)
        print(f"sahs-lens {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
