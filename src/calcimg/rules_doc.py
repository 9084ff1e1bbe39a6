"""The rule table as Markdown (the generated part of ``docs/rules.md``).

``python -m calcimg.rules_doc [TABLE]`` prints it; ``tests/test_rules_doc.py`` checks that
``docs/rules.md`` carries the current table.
"""

from __future__ import annotations

import math
import sys

from calcimg.result import Pattern
from calcimg.rules import RuleTable, load_table

__all__ = ["BEGIN", "END", "markdown"]

BEGIN = "<!-- BEGIN GENERATED: python -m calcimg.rules_doc -->"
END = "<!-- END GENERATED -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(table: RuleTable) -> str:
    """Markdown tables: categories, pattern likelihoods, labs, rules (with sources)."""
    out: list[str] = []
    priors = {c: s.prevalence**table.prior_weight for c, s in table.categories.items()}
    z = sum(priors.values())
    out.append(
        f"Scoring: prior_weight = {table.prior_weight:g}, pattern_weight = "
        f"{table.pattern_weight:g} ({_cell(table.scoring_source)})."
    )
    out.append("")
    out.append("### Categories")
    out.append("")
    out.append("| category | prevalence | effective prior | source |")
    out.append("|---|---|---|---|")
    for c, s in table.categories.items():
        out.append(
            f"| {c.value} | {s.prevalence:g} ({_cell(s.prevalence_text)}) | "
            f"{priors[c] / z:.3f} | {_cell(s.source)} |"
        )
    out.append("")
    out.append("### Pattern likelihoods P(pattern | category)")
    out.append("")
    pats = list(Pattern)
    out.append("| category | " + " | ".join(p.value for p in pats) + " |")
    out.append("|---|" + "---|" * len(pats))
    best = {
        p: max(
            table.categories,
            key=lambda c: priors[c] * table.categories[c].patterns[p] ** table.pattern_weight,
        )
        for p in pats
    }
    for c, s in table.categories.items():
        cells = []
        for p in pats:
            v = f"{s.patterns[p]:.3f}"
            cells.append(f"**{v}**" if best[p] is c else v)
        out.append(f"| {c.value} | " + " | ".join(cells) + " |")
    out.append("")
    out.append(
        "Bold: the category ranked first when the pattern is certain and nothing else is "
        "known (effective prior x likelihood): DOMAIN.md's 'maps first to'."
    )
    out.append("")
    out.append("### Lab work-up (suggested when the context lacks the value)")
    out.append("")
    out.append("| item | needs | source |")
    out.append("|---|---|---|")
    for lab in table.labs:
        out.append(f"| {lab.item} | {', '.join(lab.needs)} | {_cell(lab.source)} |")
    out.append("")
    out.append("### Rules")
    out.append("")
    out.append("| id | when | likelihood ratios (log10) | evidence | source |")
    out.append("|---|---|---|---|---|")
    for r in table.rules:
        when = " and ".join(c.describe() for c in r.conditions)
        lrs = ", ".join(
            f"{c.value} x{v:g} ({math.log10(v):+.2f})"
            for c, v in sorted(r.lr.items(), key=lambda kv: -kv[1])
        )
        out.append(f"| {r.id} | {_cell(when)} | {lrs} | {_cell(r.evidence)} | {_cell(r.source)} |")
    out.append("")
    out.append("### Differential and imaging work-up per category")
    out.append("")
    for c, s in table.categories.items():
        out.append(f"- **{c.value}**: differential: {'; '.join(s.differential) or '(none)'}")
        if s.imaging:
            out.append(f"  imaging: {'; '.join(s.imaging)}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    table = load_table(args[0] if args else "rules.toml")
    print(BEGIN)
    print(markdown(table))
    print(END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
