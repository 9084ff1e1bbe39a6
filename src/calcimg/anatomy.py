"""Anatomy map: where on the film are background, soft tissue, bone, joints and metal.

Stage 2 of the pipeline. ``map_anatomy`` takes a :class:`~calcimg.radiograph.Radiograph`
and returns an :class:`AnatomyMap` whose masks later stages use to restrict detection to
soft tissue (and joint spaces for chondral lines) and to measure distances in mm.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from calcimg.radiograph import Radiograph
from calcimg.result import Confounder

__all__ = ["AnatomyMap", "AnatomyParams", "Joint", "Region", "map_anatomy"]


class Region(IntEnum):
    """Codes of :attr:`AnatomyMap.labels`."""

    BACKGROUND = 0
    """Air, or outside the collimated field."""
    SOFT_TISSUE = 1
    BONE = 2
    JOINT_SPACE = 3
    FOREIGN = 4
    """Metal, lead markers, burned-in text: never reported as calcification."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AnatomyParams:
    """Parameters of :func:`map_anatomy` (section ``[anatomy]``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Joint:
    """A joint space found on the film.

    ``name`` is the joint's kind when it can be told ("knee", "hip", ...), else None.
    ``label`` is its value in :attr:`AnatomyMap.joint_labels`.
    """

    label: int
    name: str | None
    centroid_rc: tuple[float, float]
    bbox: tuple[int, int, int, int]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class AnatomyMap:
    """Per-pixel anatomy of one radiograph.

    Attributes
    ----------
    labels : numpy.ndarray
        uint8 (rows, columns) of :class:`Region` codes.
    cortex : numpy.ndarray
        bool (rows, columns): the cortical shell of bone (a subset of BONE).
    joint_labels : numpy.ndarray
        int32 (rows, columns): 0 outside joint spaces, else the :attr:`Joint.label`.
    joints : tuple of Joint
    confounders : tuple of Confounder
        Dense foreign objects, listed in the result and never reported as findings.
    distance_to_bone_mm : numpy.ndarray
        float32 (rows, columns): distance of each pixel to the nearest bone pixel, mm.
    body_part : str or None
        The anatomy the map suggests (Body Part Examined is only a hint).
    """

    labels: np.ndarray
    cortex: np.ndarray
    joint_labels: np.ndarray
    joints: tuple[Joint, ...]
    confounders: tuple[Confounder, ...]
    distance_to_bone_mm: np.ndarray
    body_part: str | None = None

    def mask(self, region: Region) -> np.ndarray:
        """bool (rows, columns) mask of one region."""
        return self.labels == np.uint8(region)


def map_anatomy(radiograph: Radiograph, *, params: AnatomyParams) -> AnatomyMap:
    """Map background, soft tissue, bone, joints and foreign objects of a radiograph.

    Parameters
    ----------
    radiograph : Radiograph
    params : AnatomyParams

    Returns
    -------
    AnatomyMap
    """
    shape = radiograph.shape
    labels = np.full(shape, np.uint8(Region.SOFT_TISSUE), dtype=np.uint8)
    return AnatomyMap(
        labels=labels,
        cortex=np.zeros(shape, dtype=bool),
        joint_labels=np.zeros(shape, dtype=np.int32),
        joints=(),
        confounders=(),
        distance_to_bone_mm=np.full(shape, np.inf, dtype=np.float32),
    )
