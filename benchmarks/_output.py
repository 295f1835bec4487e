"""Where a benchmark script may write: never over existing results unless asked.

The files in benchmarks/ are committed measurements that the README quotes. A script run to
try something must not replace them silently: each script checks its output files before it
measures anything and stops with one line unless `--overwrite` is given (`make bench` gives
it, to refresh the committed tables) or `--out` names another place.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

OVERWRITE_HELP = "replace existing result files (the committed ones in benchmarks/ included)"


def add_overwrite_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)


def refuse_to_overwrite(paths: Iterable[Path], overwrite: bool) -> None:
    """Exit with one line (status 1) if any of `paths` exists and `overwrite` is False."""
    if overwrite:
        return
    existing = [p for p in paths if p.exists()]
    if existing:
        names = ", ".join(str(p) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        sys.exit(
            f"error: {names} already exist(s): pass --overwrite to replace them "
            "(make bench does), or write elsewhere with --out if the script has it"
        )


def markdown_table(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    """A GitHub markdown table: the header, its rule, one line per row (cells as str)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
