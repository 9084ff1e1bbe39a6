"""Description: each finding's measured descriptors and its pattern.

Stage 4 of the pipeline. ``describe`` measures every detection in mm and classifies it
into one of the five patterns of ``DOMAIN.md`` with scores that sum to 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from calcimg.anatomy import AnatomyMap
from calcimg.detect import Detections
from calcimg.radiograph import Radiograph
from calcimg.result import Location, Pattern

__all__ = ["DescribeParams", "Description", "Descriptions", "describe"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DescribeParams:
    """Parameters of :func:`describe` (section ``[describe]``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Description:
    """The description of one detection.

    Attributes
    ----------
    detection_id : int
    pattern : Pattern
    pattern_scores : Mapping[Pattern, float]
        Sum to 1.
    descriptors : Mapping[str, Any]
        Measured values, units in their names (``particle_diameter_mean_mm``).
    drivers : tuple of str
        Human-readable reasons for the pattern choice.
    location : Location
    area_mm2 : float
    centroid_rc : tuple of float
    """

    detection_id: int
    pattern: Pattern
    pattern_scores: Mapping[Pattern, float]
    descriptors: Mapping[str, Any]
    location: Location
    area_mm2: float
    centroid_rc: tuple[float, float]
    drivers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Descriptions:
    """All descriptions of one image plus image-level descriptors."""

    items: tuple[Description, ...] = ()
    image_descriptors: Mapping[str, Any] = field(default_factory=dict)


def describe(
    radiograph: Radiograph,
    anatomy: AnatomyMap,
    detections: Detections,
    *,
    params: DescribeParams,
) -> Descriptions:
    """Measure and classify every detection.

    Parameters
    ----------
    radiograph : Radiograph
    anatomy : AnatomyMap
    detections : Detections
    params : DescribeParams

    Returns
    -------
    Descriptions
    """
    return Descriptions()
