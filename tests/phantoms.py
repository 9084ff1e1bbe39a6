"""Drawn phantoms with known masks for the anatomy and detection tests.

A phantom is built in mm on a grid of any spacing: a limb of soft tissue (projected
thickness of a cylinder), optionally a bone shaft with a cortical shell, calcified blobs,
a metal disc, a tram-track (two thin parallel lines) and Gaussian noise. Values are in
the canonical space (higher = more attenuation), 12-bit range.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from calcimg.radiograph import Radiograph, SpacingSource

# line-integral excess per mm of path (1/mm), as for a 60 kV beam
MU_SOFT = 0.02
MU_CORTEX = 0.04
MU_MEDULLA = 0.008
MU_CALC = 0.045
MU_METAL = 0.6
GAIN = 1200.0  # canonical units per unit line integral
OFFSET = 300.0


def _chord(depth: np.ndarray, radius: float) -> np.ndarray:
    d = np.clip(depth, 0.0, radius)
    return 2.0 * np.sqrt(np.maximum(d * (2.0 * radius - d), 0.0))


@dataclass
class Phantom:
    """A drawn film and the truth it was drawn from (masks at the film's spacing)."""

    radiograph: Radiograph
    body: np.ndarray
    bone: np.ndarray
    lesions: dict[str, np.ndarray] = field(default_factory=dict)
    metal: np.ndarray | None = None


def film_of(px: np.ndarray, spacing_mm: float) -> Radiograph:
    """A calibrated 12-bit film of the pixels ``px`` (clipped to 0-4095 by the caller) at
    isotropic ``spacing_mm``."""
    return Radiograph(
        pixels=np.asarray(px, dtype=np.float32),
        pixel_spacing_mm=(spacing_mm, spacing_mm),
        spacing_source=SpacingSource.PIXEL_SPACING,
        calibrated=True,
        value_range=(0.0, 4095.0),
    )


def make_phantom(
    spacing_mm: float = 0.2,
    *,
    size_mm: tuple[float, float] = (120.0, 110.0),
    bone: bool = True,
    blobs: tuple[tuple[float, float, float], ...] = (),
    metal: tuple[float, float, float] | None = None,
    tram: tuple[float, float, float, float] | None = None,
    noise: float = 4.0,
    seed: int = 0,
) -> Phantom:
    """Draw a limb phantom.

    Parameters
    ----------
    spacing_mm : float
    size_mm : (rows, cols) extent in mm.
    bone : draw a 22 mm bone shaft with a 2.5 mm cortex at columns 44-66 mm.
    blobs : (row_mm, col_mm, radius_mm) calcified spheres.
    metal : (row_mm, col_mm, radius_mm) a metal disc.
    tram : (row0_mm, row1_mm, col_mm, gap_mm): two 0.6 mm lines from row0 to row1.
    noise : Gaussian noise sigma in canonical units.
    """
    rows = round(size_mm[0] / spacing_mm)
    cols = round(size_mm[1] / spacing_mm)
    r = (np.arange(rows, dtype=np.float64) + 0.5) * spacing_mm
    c = (np.arange(cols, dtype=np.float64) + 0.5) * spacing_mm
    rr, cc = np.meshgrid(r, c, indexing="ij")
    centre, radius = 55.0, 40.0
    depth = radius - np.abs(cc - centre)
    body = depth > 0
    # a thick soft-tissue slab whose thickness falls off smoothly towards the skin
    line_int = MU_SOFT * 60.0 * (1.0 - np.exp(-np.clip(depth, 0.0, None) / 8.0))
    bone_mask = np.zeros_like(body)
    if bone:
        b_centre, b_radius, cortex = 55.0, 11.0, 2.5
        b_depth = b_radius - np.abs(cc - b_centre)
        bone_mask = b_depth > 0
        outer = _chord(b_depth, b_radius)
        inner = _chord(b_depth - cortex, b_radius - cortex) * (b_depth > cortex)
        # trabecular texture: band-passed noise, as bone shows on a radiograph
        tex_rng = np.random.default_rng(seed + 1000)
        white = tex_rng.standard_normal(line_int.shape).astype(np.float32)
        s1, s2 = 0.35 / spacing_mm, 1.1 / spacing_mm
        bp = cv2.GaussianBlur(white, (0, 0), s1) - cv2.GaussianBlur(white, (0, 0), s2)
        bp /= float(bp.std()) + 1e-6
        trab = 0.45 + 1.3 * np.exp(-2.2 * bp * bp)
        line_int += MU_CORTEX * (outer - inner) + MU_MEDULLA * inner * trab / float(trab.mean())
    lesions: dict[str, np.ndarray] = {}
    for k, (r0, c0, rad) in enumerate(blobs):
        d2 = (rr - r0) ** 2 + (cc - c0) ** 2
        t = 2.0 * np.sqrt(np.maximum(rad * rad - d2, 0.0))
        line_int += MU_CALC * t
        lesions[f"blob{k}"] = d2 <= rad * rad
    if tram is not None:
        r0, r1, c0, gap = tram
        along = (rr >= r0) & (rr <= r1)
        t_mask = np.zeros_like(body)
        for cl in (c0 - gap / 2.0, c0 + gap / 2.0):
            half = 0.3
            dist = np.abs(cc - cl)
            t = 2.0 * np.sqrt(np.maximum(half * half - dist * dist, 0.0)) * along
            # a calcified vessel wall seen tangentially: a long path through a thin shell
            line_int += MU_CALC * 20.0 * t
            t_mask |= (dist <= half + spacing_mm / 2) & along
        lesions["tram"] = t_mask
    metal_mask = None
    if metal is not None:
        r0, c0, rad = metal
        metal_mask = (rr - r0) ** 2 + (cc - c0) ** 2 <= rad * rad
        line_int += MU_METAL * 3.0 * metal_mask
    rng = np.random.default_rng(seed)
    px = OFFSET + GAIN * line_int + rng.normal(0.0, noise, line_int.shape)
    px = np.clip(px, 0, 4095)
    return Phantom(
        radiograph=film_of(px, spacing_mm),
        body=body,
        bone=bone_mask,
        lesions=lesions,
        metal=metal_mask,
    )
