"""Replace the generated rule-table part of docs/rules.md with the current table.

Usage: PYTHONPATH=src python scripts/update_rules_doc.py [docs/rules.md] [TABLE]
"""

from __future__ import annotations

import sys
from pathlib import Path

from calcimg.rules import load_table
from calcimg.rules_doc import BEGIN, END, markdown


def main(argv: list[str]) -> int:
    doc = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "docs" / "rules.md"
    table = load_table(argv[1] if len(argv) > 1 else "rules.toml")
    text = doc.read_text(encoding="utf-8")
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END)
    doc.write_text(text[:start] + "\n" + markdown(table) + "\n" + text[end:], encoding="utf-8")
    print(f"{doc}: rule table updated ({len(table.rules)} rules)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
