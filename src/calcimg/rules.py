"""Rules: rank the likely categories of each finding and of the image.

Stage 5 of the pipeline. ``rank`` maps the described patterns plus optional clinical
context to ranked categories with evidence, a differential and suggested work-up, from
the declarative table ``models/rules.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass

from calcimg.context import ClinicalContext
from calcimg.describe import Descriptions
from calcimg.result import CategoryScore

__all__ = ["Assessment", "FindingAssessment", "RulesParams", "rank"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RulesParams:
    """Parameters of :func:`rank` (section ``[rules]``)."""

    table: str = "rules.toml"
    """The rule table, a file name in ``models/`` or a path."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FindingAssessment:
    """Ranked categories for one finding."""

    finding_id: int
    categories: tuple[CategoryScore, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Assessment:
    """The rule layer's output for one image."""

    findings: tuple[FindingAssessment, ...] = ()
    categories: tuple[CategoryScore, ...] = ()
    differential: tuple[str, ...] = ()
    workup: tuple[str, ...] = ()


def rank(
    descriptions: Descriptions,
    *,
    context: ClinicalContext | None,
    params: RulesParams,
) -> Assessment:
    """Rank categories for each finding and for the image.

    Parameters
    ----------
    descriptions : Descriptions
    context : ClinicalContext or None
    params : RulesParams

    Returns
    -------
    Assessment
    """
    return Assessment()
