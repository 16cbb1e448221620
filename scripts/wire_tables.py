"""Writes docs/architecture.md's wire tables (methods, options) from the registry: `--check` fails on drift.

The tables sit between `<!-- NAME:start -->` and `<!-- NAME:end -->` markers; everything else in the file is
left as it is. tests/protocol/test_wire_tables.py runs the check.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.serving import dispatcher  # noqa: E402,F401 - its `rpc` declarations fill the registry
from backend.serving.methods import method_table, option_table  # noqa: E402

DOC = REPO / "docs" / "architecture.md"
TABLES = {"wire-methods": method_table, "wire-options": option_table}


def render(text: str) -> str:
    """`text` with every marked table replaced by the registry's; a missing marker is an error naming it."""
    for name, table in TABLES.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"error: {DOC} lacks the <!-- {name}:start --> ... <!-- {name}:end --> markers")
        text = pattern.sub(lambda m: m.group(1) + table() + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the doc differs from the registry")
    args = parser.parse_args(argv)
    text = DOC.read_text(encoding="utf-8")
    new = render(text)
    if args.check:
        if new != text:
            print(f"{DOC} is out of date: run python scripts/wire_tables.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
