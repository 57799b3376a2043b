"""The ``sahs-lens`` command: every stage of the method from the shell.

``sahs-lens --help`` lists the subcommands; each has its own ``--help`` with an example.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sahs_lens._version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sahs-lens",
        description="Find, test and deploy the safety attention heads of vision-language models.",
        epilog="Example: sahs-lens --version",
    )
    parser.add_argument("--version", action="version", version=f"sahs-lens {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
