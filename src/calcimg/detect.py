"""Detection: candidate soft-tissue calcifications grouped into findings.

Stage 3 of the pipeline. ``detect`` takes a radiograph and its anatomy map and returns
:class:`Detections`: each a group of particles (a speckled field or a tram-track is one
finding) with its pixel mask and a detection confidence in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from calcimg.anatomy import AnatomyMap
from calcimg.radiograph import Radiograph

__all__ = ["DetectParams", "Detection", "Detections", "detect"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectParams:
    """Parameters of :func:`detect` (section ``[detect]``)."""


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Detection:
    """One finding: a group of calcified particles.

    Attributes
    ----------
    id : int
        1-based, unique within the image.
    bbox : tuple of int
        (row_min, col_min, row_max, col_max) in pixels, max exclusive.
    particles : numpy.ndarray
        int32, bbox-sized: 0 background, 1..n_particles the particles of this finding.
    confidence : float
        That this is a real calcification, in [0, 1].
    features : Mapping[str, float]
        The measured features false-positive reduction used (names carry units).
    """

    id: int
    bbox: tuple[int, int, int, int]
    particles: np.ndarray
    confidence: float
    features: Mapping[str, float] = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        """bool, bbox-sized: the union of the particles."""
        return self.particles > 0

    @property
    def n_particles(self) -> int:
        return int(self.particles.max(initial=0))


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Detections:
    """All findings of one image, ordered by id."""

    items: tuple[Detection, ...] = ()
    n_candidates: int = 0


def detect(radiograph: Radiograph, anatomy: AnatomyMap, *, params: DetectParams) -> Detections:
    """Find soft-tissue calcifications.

    Parameters
    ----------
    radiograph : Radiograph
    anatomy : AnatomyMap
    params : DetectParams

    Returns
    -------
    Detections
    """
    return Detections()
