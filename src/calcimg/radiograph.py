"""The :class:`Radiograph`: one decoded image in calcimg's canonical space.

Every stage after ingest works on a ``Radiograph``. Its pixels are float32 with higher
values meaning more attenuation (bone and metal bright), whatever the file's
photometric interpretation; its spacing is in millimetres with the provenance the result
contract asks for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import cv2
import numpy as np

from calcimg.imageops import resize

__all__ = ["Radiograph", "SpacingSource"]


class SpacingSource(StrEnum):
    """Where a radiograph's pixel spacing came from (result contract ``spacing_source``)."""

    PIXEL_SPACING = "pixel_spacing"
    """(0028,0030) Pixel Spacing, in the patient plane."""
    IMAGER_PIXEL_SPACING = "imager_pixel_spacing"
    """(0018,1164) Imager Pixel Spacing, at the detector (includes magnification)."""
    IMAGER_PIXEL_SPACING_ERMF = "imager_pixel_spacing_ermf"
    """Imager Pixel Spacing divided by (0018,1114) Estimated Radiographic Magnification Factor."""
    NOMINAL_SCANNED_PIXEL_SPACING = "nominal_scanned_pixel_spacing"
    """(0018,2010) Nominal Scanned Pixel Spacing, for digitised film."""
    USER = "user"
    """Given by the user (``--spacing``), for files without a usable spacing."""
    ASSUMED = "assumed"
    """No usable spacing anywhere: a stated default; mm figures are uncalibrated."""


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Radiograph:
    """One frame of a radiograph, decoded into calcimg's canonical space.

    Parameters
    ----------
    pixels : numpy.ndarray
        float32, shape (rows, columns). Stored values after the Modality LUT, with
        MONOCHROME1 inverted, so that higher means more attenuation.
    pixel_spacing_mm : tuple of float
        (row, column) spacing in mm.
    spacing_source : SpacingSource
        Where ``pixel_spacing_mm`` came from.
    calibrated : bool
        False when the spacing is assumed or is known not to be in the patient plane
        with certainty; every mm figure is then approximate.
    transforms : tuple of str
        The pixel transforms applied in order, e.g. ``("modality_lut",
        "invert_monochrome1")``.
    voi_window : tuple of float or None
        (center, width) for display, in canonical space.
    value_range : tuple of float
        (low, high): the range the canonical values can take (after the Modality LUT),
        used to normalise intensities across bit depths.
    source : str
        The path as given, or ``"<dataset>"`` / ``"<stream>"``.
    frame : int
        Frame index (0 for single-frame objects).
    """

    pixels: np.ndarray
    pixel_spacing_mm: tuple[float, float]
    spacing_source: SpacingSource
    calibrated: bool
    transforms: tuple[str, ...] = ()
    voi_window: tuple[float, float] | None = None
    value_range: tuple[float, float] = (0.0, 4095.0)
    source: str = "<array>"
    frame: int = 0
    number_of_frames: int = 1
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    modality: str | None = None
    body_part_examined: str | None = None
    series_description: str | None = None
    view_position: str | None = None
    photometric_interpretation: str | None = None
    bits_stored: int | None = None
    transfer_syntax_uid: str | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    accession_number: str | None = None
    study_date: str | None = None
    input_hash: str | None = None
    """SHA-256 of the file's bytes (None for in-memory datasets)."""
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.pixels.ndim != 2:
            raise ValueError(
                f"Radiograph pixels must be 2-D (rows, columns); found shape {self.pixels.shape}"
            )
        if self.pixels.dtype != np.float32:
            raise ValueError(f"Radiograph pixels must be float32; found {self.pixels.dtype}")
        dr, dc = self.pixel_spacing_mm
        if not (0 < dr <= 5 and 0 < dc <= 5):
            raise ValueError(
                f"pixel_spacing_mm must be in (0, 5] mm; found {self.pixel_spacing_mm}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return (int(self.pixels.shape[0]), int(self.pixels.shape[1]))

    @property
    def pixel_area_mm2(self) -> float:
        """Area of one pixel in mm2."""
        return float(self.pixel_spacing_mm[0] * self.pixel_spacing_mm[1])

    @property
    def mean_spacing_mm(self) -> float:
        """Geometric mean of row and column spacing, for isotropic size conversions."""
        return float(np.sqrt(self.pixel_spacing_mm[0] * self.pixel_spacing_mm[1]))

    def mm_to_px(self, length_mm: float) -> float:
        """Convert a length in mm to pixels (at the mean spacing)."""
        return float(length_mm) / self.mean_spacing_mm

    def grid(self, grid_mm: float) -> tuple[float, tuple[int, int]]:
        """An isotropic analysis grid over the film.

        Returns (spacing in mm, (rows, columns)): the spacing is ``grid_mm``, or the
        film's finer spacing when the film is coarser than that.
        """
        sr, sc = self.pixel_spacing_mm
        sp = max(grid_mm, min(sr, sc))
        h, w = self.shape
        return sp, (max(1, round(h * sr / sp)), max(1, round(w * sc / sp)))

    def normalized_on(self, shape: tuple[int, int]) -> np.ndarray:
        """:meth:`normalized` area-averaged to a grid of ``shape`` spanning the film.

        Resampled first, then normalised (area averaging is linear): no film-sized float
        copies (a 9 MP film: 72 MB).
        """
        lo, hi = self.value_range
        out = resize(self.pixels, shape, cv2.INTER_AREA) - np.float32(lo)
        out *= np.float32(1.0 / (hi - lo) if hi > lo else 1.0)
        return out

    def normalized(self) -> np.ndarray:
        """Pixels scaled so that ``value_range`` maps to [0, 1] (float32, not clipped)."""
        lo, hi = self.value_range
        scale = 1.0 / (hi - lo) if hi > lo else 1.0
        # one film-sized float32 array, scaled in place (9 MP: 36 MB, not 108 MB of
        # temporaries)
        out = self.pixels - np.float32(lo)
        out *= np.float32(scale)
        return out
