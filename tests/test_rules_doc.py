"""docs/rules.md carries the current rule table (regenerate: python -m calcimg.rules_doc)."""

from __future__ import annotations

from pathlib import Path

from calcimg.rules import load_table
from calcimg.rules_doc import BEGIN, END, markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "rules.md"


def test_docs_rules_md_is_up_to_date() -> None:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END)
    assert text[start:end].strip() == markdown(load_table()).strip(), (
        "docs/rules.md is out of date: replace the generated part with the output of "
        "`PYTHONPATH=src python scripts/update_rules_doc.py`"
    )


def test_markdown_lists_every_rule_with_its_source() -> None:
    table = load_table()
    md = markdown(table)
    for rule in table.rules:
        assert f"| {rule.id} |" in md
    assert "ca_x_p_above_70" in md and "context.ca_x_p_mg2_dl2 > 70" in md
