"""A readable account of one result: what was found, why, and what to do next.

:func:`render` is pure (a :class:`~calcimg.result.Result` in, text out) so that the CLI
(``calcimg explain``) and the web tool share it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from calcimg.context import ClinicalContext
from calcimg.result import CategoryScore, Finding, Result, Status

__all__ = ["render", "render_context", "render_finding"]

_INDENT = "  "


def _num(v: Any, unit: str = "", digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v}{' ' + unit if unit else ''}"
    if isinstance(v, float):
        return f"{v:.{digits}f}{' ' + unit if unit else ''}"
    return str(v)


def _descriptor_value(name: str, v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return _num(v)
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"
    if isinstance(v, list | tuple):
        return ", ".join(_descriptor_value(name, x) for x in v)
    return str(v)


def _category_lines(cats: Iterable[CategoryScore], indent: str, *, ids: bool) -> list[str]:
    lines: list[str] = []
    for i, c in enumerate(cats, start=1):
        head = f"{indent}{i}. {c.name.value} {c.score:.2f}"
        if ids and c.finding_ids:
            head += f" (finding{'s' if len(c.finding_ids) > 1 else ''} "
            head += ", ".join(str(x) for x in c.finding_ids) + ")"
        lines.append(head)
        lines += [f"{indent}{_INDENT}- {e}" for e in c.evidence]
    return lines


def render_finding(f: Finding, *, calibrated: bool = True) -> str:
    """The account of one finding: pattern and why, size, location, categories and why."""
    approx = "" if calibrated else " (approx.)"
    lines: list[str] = []
    scores = sorted(f.pattern_scores.items(), key=lambda kv: -kv[1])
    others = ", ".join(f"{k} {v:.2f}" for k, v in scores if k != f.pattern.value and v >= 0.01)
    top = f.pattern_scores.get(f.pattern.value)
    lines.append(
        f"Finding {f.id}: {f.pattern.value}"
        + (f" (pattern score {top:.2f}" if top is not None else " (")
        + (f"; others: {others})" if others else ")")
    )
    r0, c0, r1, c1 = f.bbox
    lines.append(
        f"{_INDENT}confidence {f.confidence:.2f} that it is a calcification; area "
        f"{f.area_mm2:.1f} mm2{approx}; {f.n_particles} particle"
        f"{'s' if f.n_particles != 1 else ''}; rows {r0}-{r1}, columns {c0}-{c1}; centre "
        f"(row {f.centroid_rc[0]:.0f}, column {f.centroid_rc[1]:.0f})"
    )
    loc = f.location
    where = "inside the joint space" if loc.intra_articular else "outside the joint space"
    joint = (
        f"nearest joint {loc.nearest_joint} at {_num(loc.distance_to_joint_mm, 'mm')}"
        if loc.nearest_joint
        else "no joint nearby"
    )
    lines.append(
        f"{_INDENT}location: {joint}; {where}; {_num(loc.distance_to_bone_mm, 'mm')} from bone"
    )
    drivers = f.descriptors.get("drivers")
    if drivers:
        if isinstance(drivers, str):
            drivers = [drivers]
        lines.append(f"{_INDENT}why {f.pattern.value}:")
        lines += [f"{_INDENT * 2}- {d}" for d in drivers]
    desc = {k: v for k, v in f.descriptors.items() if k != "drivers"}
    if desc:
        lines.append(f"{_INDENT}descriptors:")
        items = [f"{k} {_descriptor_value(k, v)}" for k, v in sorted(desc.items())]
        line = _INDENT * 2
        for item in items:
            if len(line) + len(item) > 88 and line.strip():
                lines.append(line.rstrip("; "))
                line = _INDENT * 2
            line += item + "; "
        if line.strip():
            lines.append(line.rstrip("; "))
    if f.categories:
        lines.append(f"{_INDENT}categories and why:")
        lines += _category_lines(f.categories, _INDENT * 2, ids=False)
    return "\n".join(lines)


def render_context(context: ClinicalContext | None) -> str:
    """The clinical context and its derived values (with definition and source)."""
    if context is None or context.is_empty:
        return "Clinical context: none given"
    known = {k: v for k, v in context.to_dict().items() if v is not None}
    lines = ["Clinical context: " + "; ".join(f"{k} {_num(v, digits=2)}" for k, v in known.items())]
    for d in context.derived():
        lines.append(
            f"{_INDENT}{d.name} = {d.value:.1f} {d.unit} ({d.definition}; source: {d.source})"
        )
    return "\n".join(lines)


def render(
    result: Result,
    *,
    finding: int | None = None,
    context: ClinicalContext | None = None,
    show_context: bool = False,
) -> str:
    """A readable, plain-text account of one result.

    Parameters
    ----------
    result : Result
        One line of ``results.jsonl`` (``Result.from_dict``) or a fresh analysis.
    finding : int, optional
        Explain only the finding with this id (the image-level sections stay).
    context : ClinicalContext, optional
        The context the result was ranked with, shown with its derived values when
        ``show_context`` is true (results do not carry their context).
    show_context : bool
        Print the clinical context section.

    Returns
    -------
    str
        Lines separated by ``\\n``, no trailing newline.

    Raises
    ------
    KeyError
        When ``finding`` is not the id of a finding (the message lists the ids).
    """
    where = result.source if result.frame == 0 else f"{result.source} [frame {result.frame}]"
    lines = [f"Image: {where}"]
    ident = [
        f"{k} {v}"
        for k, v in (
            ("modality", result.modality),
            ("body part", result.body_part),
            ("SOP Instance UID", result.sop_instance_uid),
        )
        if v
    ]
    if ident:
        lines.append(_INDENT + "; ".join(ident))
    if result.status is not Status.OK:
        msg = result.error.message if result.error else "no reason given"
        etype = result.error.type if result.error else ""
        lines.append(f"{_INDENT}status {result.status.value}: {etype}: {msg}")
        return "\n".join(lines)
    img = result.image
    calibrated = True
    if img is not None:
        calibrated = img.calibrated
        lines.append(
            f"{_INDENT}{img.rows} x {img.columns} px; pixel spacing "
            f"{img.pixel_spacing_mm[0]:.3f} x {img.pixel_spacing_mm[1]:.3f} mm (row x column) "
            f"from {img.spacing_source}; "
            + ("calibrated" if img.calibrated else "UNCALIBRATED: every mm figure is approximate")
        )
        if img.transforms:
            lines.append(f"{_INDENT}pixel transforms: {', '.join(img.transforms)}")
    if result.confounders:
        kinds: dict[str, int] = {}
        for c in result.confounders:
            kinds[c.kind] = kinds.get(c.kind, 0) + 1
        lines.append(
            f"{_INDENT}excluded look-alikes: "
            + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
        )
    if show_context:
        lines.append(render_context(context))
    n = len(result.findings)
    lines.append(
        f"Result: {'FLAGGED' if result.flag else 'not flagged'}: {n} finding{'s' if n != 1 else ''}"
    )
    findings: tuple[Finding, ...] = result.findings
    if finding is not None:
        findings = tuple(f for f in result.findings if f.id == finding)
        if not findings:
            ids = ", ".join(str(f.id) for f in result.findings) or "none"
            raise KeyError(f"{where}: no finding {finding}; finding ids: {ids}")
    for f in findings:
        lines.append("")
        lines.append(render_finding(f, calibrated=calibrated))
    if result.categories:
        lines.append("")
        lines.append("Image-level ranking (mean of the findings' scores):")
        lines += _category_lines(result.categories, _INDENT, ids=True)
    if result.differential:
        lines.append("")
        lines.append("Differential:")
        lines += [f"{_INDENT}- {d}" for d in result.differential]
    if result.workup:
        lines.append("")
        lines.append("Suggested work-up:")
        lines += [f"{_INDENT}- {w}" for w in result.workup]
    return "\n".join(lines)
