"""What surrounds a calcification candidate: descriptors of a 32 mm patch around it.

The detector's named features (:data:`calcimg.detect.FEATURE_NAMES`) measure the
candidate itself and a thin ring around it. Its commonest errors lie in what surrounds
the candidate: bone the anatomy map missed (a fibula's cortex, a sesamoid, a phalanx)
continues beyond the candidate as a long edge, while a deposit stands alone in soft
tissue. These descriptors read that surround from the film on a coarse grid
(:data:`GRID_MM`), centred on the candidate's box, in the film's contrast unit
(:meth:`calcimg.anatomy.AnatomyMap.contrast_unit`) relative to the patch's median.
All are invariant to rotating or mirroring the film by quarter turns (rings, centred
measures), so that a finding's orientation does not change its score.

Descriptors (:data:`SURROUND_FEATURES`; radii in mm from the box's centre):

- ``ring_A_B_mean``, ``_std``, ``_spread`` (90th minus 10th percentile), ``_bone`` (share
  the anatomy map calls bone) and ``_grad`` (mean gradient magnitude, per mm) over each
  annulus of :data:`RINGS`;
- ``coherence_S_A_B``: the structure tensor's coherence (0 isotropic, 1 one orientation)
  at integration scale S mm, averaged over the annuli 0-4, 4-8 and 8-16 mm: a bone's
  margin is one long edge;
- ``dog_S_peak``, ``dog_S_mean``: a difference of Gaussians (sigma S and 2S mm), its
  maximum within 2 mm of the centre and its mean within 4 mm;
- ``inside_level``, ``around_level``, ``inside_step`` (their difference), ``box_fill``
  (the candidate's share of the patch), ``around_bone``, ``around_grad``, ``inside_grad``:
  over the candidate's pixels and a 1.5 mm band around them;
- ``beyond_grad``, ``beyond_grad_p90``, ``beyond_spread``: gradient and spread 2-6 mm
  beyond the candidate, where a bone's edge goes on and a deposit's surroundings are
  flat.

A confidence model reads them beside the named features
(:mod:`calcimg.bonemodel` trees; ``detect.confidence_model``).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["GRID_MM", "PATCH_MM", "RINGS", "SURROUND_FEATURES", "Surround"]

GRID_MM = 0.5
"""Spacing of the grid the descriptors are read on (films coarser keep theirs)."""

PATCH_MM = 32.0
"""Side of the square patch around a candidate's centre."""

RINGS = (
    (0.0, 1.0),
    (1.0, 2.0),
    (2.0, 3.0),
    (3.0, 4.5),
    (4.5, 6.0),
    (6.0, 8.0),
    (8.0, 11.0),
    (11.0, 16.0),
)
"""Annuli (inner, outer radius in mm) of the ring descriptors."""

_COHERENCE_SCALES = (1.0, 3.0)
_COHERENCE_RINGS = ((0.0, 4.0), (4.0, 8.0), (8.0, 16.0))
_DOG_SCALES = (0.5, 1.0, 2.0, 4.0, 8.0)
_DOG_BLURS = tuple(sorted({*_DOG_SCALES, *(2 * s for s in _DOG_SCALES)}))


def _names() -> tuple[str, ...]:
    out = []
    for a, b in RINGS:
        tag = f"ring_{a:g}_{b:g}".replace(".", "p")
        out += [f"{tag}_{k}" for k in ("mean", "std", "spread", "bone", "grad")]
    for s in _COHERENCE_SCALES:
        out += [f"coherence_{s:g}_{a:g}_{b:g}" for a, b in _COHERENCE_RINGS]
    for s in _DOG_SCALES:
        tag = f"dog_{s:g}".replace(".", "p")
        out += [f"{tag}_peak", f"{tag}_mean"]
    out += ["inside_level", "around_level", "inside_step", "box_fill", "around_bone"]
    out += ["around_grad", "inside_grad", "beyond_grad", "beyond_grad_p90", "beyond_spread"]
    return tuple(out)


SURROUND_FEATURES = _names()
"""Names of the descriptors, in the order :meth:`Surround.at` returns them."""


class Surround:
    """A film prepared for surround descriptors (one per film, read per candidate).

    Parameters
    ----------
    film : ndarray
        float32 (rows, columns), the normalised film on the descriptor grid.
    bone : ndarray
        bool, same shape: the anatomy map's bone.
    spacing_mm : float
        The grid's spacing (:data:`GRID_MM`, or the film's when coarser).
    unit : float
        The film's contrast unit (normalised intensity); descriptors of intensity are
        in this unit.
    """

    def __init__(self, film: np.ndarray, bone: np.ndarray, spacing_mm: float, unit: float):
        self.sp = float(spacing_mm)
        self.half = max(4, int(round(PATCH_MM / 2 / self.sp)))
        h = self.half
        fill = float(np.median(film)) if film.size else 0.0
        scaled = (film.astype(np.float32) - np.float32(fill)) / np.float32(max(unit, 1e-6))
        self._film = cv2.copyMakeBorder(scaled, h, h, h, h, cv2.BORDER_CONSTANT, value=0.0)
        self._bone = cv2.copyMakeBorder(
            bone.astype(np.float32), h, h, h, h, cv2.BORDER_CONSTANT, value=0.0
        )
        self.shape = film.shape
        yy, xx = np.mgrid[-h:h, -h:h] + 0.5
        self._r = np.hypot(yy, xx) * self.sp
        self._rings = [(self._r >= a) & (self._r < b) for a, b in RINGS]
        self._coh_rings = [(self._r >= a) & (self._r < b) for a, b in _COHERENCE_RINGS]
        self._near2 = self._r < 2.0
        self._near4 = self._r < 4.0
        band = max(1, int(round(1.5 / self.sp)))
        self._band_kernel = np.ones((2 * band + 1, 2 * band + 1), np.uint8)

    def at(self, centre: tuple[float, float], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The descriptors of one candidate, in :data:`SURROUND_FEATURES` order.

        Parameters
        ----------
        centre : tuple of float
            (row, column) of the candidate's box centre on the descriptor grid.
        rows, cols : ndarray
            The candidate's pixels on the descriptor grid.

        Returns
        -------
        ndarray of float64, shape (len(SURROUND_FEATURES),)
        """
        h, sp = self.half, self.sp
        cy = int(np.clip(round(centre[0]), 0, self.shape[0] - 1))
        cx = int(np.clip(round(centre[1]), 0, self.shape[1] - 1))
        im = self._film[cy : cy + 2 * h, cx : cx + 2 * h]
        im = im - np.float32(np.median(im))
        bone = self._bone[cy : cy + 2 * h, cx : cx + 2 * h]
        m = np.zeros(im.shape, np.uint8)
        ry, rx = np.asarray(rows) - cy + h, np.asarray(cols) - cx + h
        ok = (ry >= 0) & (ry < 2 * h) & (rx >= 0) & (rx < 2 * h)
        m[ry[ok], rx[ok]] = 1
        inside = m > 0
        gx = cv2.Sobel(im, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(im, cv2.CV_32F, 0, 1, ksize=3)
        gm = np.hypot(gx, gy) / np.float32(8.0 * sp)  # Sobel's weight 8, per mm
        out: list[float] = []
        for r in self._rings:
            v = im[r]
            p10, p90 = np.percentile(v, (10, 90))
            out += [v.mean(), v.std(), p90 - p10, bone[r].mean(), gm[r].mean()]
        for s in _COHERENCE_SCALES:
            jxx, jyy, jxy = (
                cv2.GaussianBlur(a, (0, 0), s / sp) for a in (gx * gx, gy * gy, gx * gy)
            )
            coh = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + 1e-6)
            out += [coh[r].mean() for r in self._coh_rings]
        # the scales double, so each blur serves two differences (6 blurs, not 10)
        blurs = {s: cv2.GaussianBlur(im, (0, 0), s / sp) for s in _DOG_BLURS}
        for s in _DOG_SCALES:
            d = blurs[s] - blurs[2 * s]
            out += [d[self._near2].max(), d[self._near4].mean()]
        if inside.any():
            near = cv2.dilate(m, self._band_kernel) > 0
            ring = near & ~inside
            lvl_in = float(im[inside].mean())
            lvl_around = float(im[ring].mean()) if ring.any() else lvl_in
            out += [lvl_in, lvl_around, lvl_in - lvl_around, float(inside.mean())]
            out += [float(bone[near].mean())]
            out += [float(gm[ring].mean()) if ring.any() else 0.0, float(gm[inside].mean())]
            dist = cv2.distanceTransform((~near).view(np.uint8), cv2.DIST_L2, 3) * sp
            far = (dist > 2.0) & (dist < 6.0)
            if far.any():
                q10, q90 = np.percentile(im[far], (10, 90))
                out += [float(gm[far].mean()), float(np.percentile(gm[far], 90)), q90 - q10]
            else:
                out += [0.0, 0.0, 0.0]
        else:
            out += [0.0] * 10
        return np.asarray(out, dtype=np.float64)
