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

from collections.abc import Sequence

import cv2
import numpy as np

from calcimg.imageops import percentiles

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
_MAX_CHANNELS = 128
"""Candidates filtered together as one image's channels (OpenCV 5 takes at most 128, 4.x
512)."""


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
"""Names of the descriptors, in the order :meth:`Surround.at` and :meth:`Surround.many`
return them."""


class Surround:
    """A film prepared for surround descriptors (one per film, read per candidate with
    :meth:`at` or for many candidates at once with :meth:`many`).

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

        # flat indices into a patch, in the row-major order a boolean mask reads them
        def annulus(a: float, b: float) -> np.ndarray:
            return np.flatnonzero((self._r >= a) & (self._r < b))

        self._ring_idx = [annulus(a, b) for a, b in RINGS]
        self._coh_idx = [annulus(a, b) for a, b in _COHERENCE_RINGS]
        self._near2 = np.flatnonzero(self._r < 2.0)
        self._near4 = np.flatnonzero(self._r < 4.0)
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
        return self.many([centre], [(rows, cols)])[0]

    def many(
        self,
        centres: Sequence[tuple[float, float]],
        pixels: Sequence[tuple[np.ndarray, np.ndarray]],
    ) -> np.ndarray:
        """The descriptors of many candidates at once; row k is what :meth:`at` gives
        candidate k alone.

        The patches are stacked as the channels of one image, so that each filter is one
        OpenCV call and each ring's statistics one numpy reduction for all candidates
        (one candidate at a time, the calls' overhead cost more than their arithmetic).

        Parameters
        ----------
        centres : sequence of (float, float)
            Each candidate's box centre (row, column) on the descriptor grid.
        pixels : sequence of (ndarray, ndarray)
            Each candidate's pixels (rows, columns) on the descriptor grid.

        Returns
        -------
        ndarray of float64, shape (len(centres), len(SURROUND_FEATURES))
        """
        out = np.zeros((len(centres), len(SURROUND_FEATURES)))
        for k in range(0, len(centres), _MAX_CHANNELS):
            sl = slice(k, k + _MAX_CHANNELS)
            out[sl] = self._chunk(centres[sl], pixels[sl])
        return out

    def _chunk(
        self,
        centres: Sequence[tuple[float, float]],
        pixels: Sequence[tuple[np.ndarray, np.ndarray]],
    ) -> np.ndarray:
        """:meth:`many` for at most :data:`_MAX_CHANNELS` candidates."""
        h, sp, n = self.half, self.sp, len(centres)
        side = 2 * h
        corners = [
            (
                int(np.clip(round(c[0]), 0, self.shape[0] - 1)),
                int(np.clip(round(c[1]), 0, self.shape[1] - 1)),
            )
            for c in centres
        ]
        ims = np.stack([self._film[cy : cy + side, cx : cx + side] for cy, cx in corners])
        ims -= np.median(ims.reshape(n, -1), axis=1).astype(np.float32)[:, None, None]
        bone = np.stack([self._bone[cy : cy + side, cx : cx + side] for cy, cx in corners])
        # (side, side, n): candidates as channels, each filtered on its own
        chans = np.ascontiguousarray(ims.transpose(1, 2, 0))

        def per_candidate(a: np.ndarray) -> np.ndarray:
            """(n, side * side), row k candidate k, from OpenCV's (side, side[, n])."""
            return np.ascontiguousarray(a.reshape(side * side, n).T)

        gx = cv2.Sobel(chans, cv2.CV_32F, 1, 0, ksize=3).reshape(side, side, n)
        gy = cv2.Sobel(chans, cv2.CV_32F, 0, 1, ksize=3).reshape(side, side, n)
        gm = per_candidate(np.hypot(gx, gy) / np.float32(8.0 * sp))  # Sobel's weight 8, per mm
        flat, bone_f = ims.reshape(n, -1), bone.reshape(n, -1)
        # means in float64: a float32 mean's rounding would depend on how many candidates
        # are reduced together
        f8 = np.float64
        cols: list[np.ndarray] = []
        for r in self._ring_idx:
            v = flat[:, r]
            p10, p90 = np.percentile(v, (10, 90), axis=1)
            cols += [v.mean(axis=1, dtype=f8), v.std(axis=1, dtype=f8), p90 - p10]
            cols += [bone_f[:, r].mean(axis=1, dtype=f8), gm[:, r].mean(axis=1, dtype=f8)]
        for s in _COHERENCE_SCALES:
            jxx, jyy, jxy = (
                cv2.GaussianBlur(a, (0, 0), s / sp).reshape(side, side, n)
                for a in (gx * gx, gy * gy, gx * gy)
            )
            coh = per_candidate(np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + 1e-6))
            cols += [coh[:, r].mean(axis=1, dtype=f8) for r in self._coh_idx]
        # the scales double, so each blur serves two differences (6 blurs, not 10)
        blurs = {
            s: cv2.GaussianBlur(chans, (0, 0), s / sp).reshape(side, side, n) for s in _DOG_BLURS
        }
        for s in _DOG_SCALES:
            d = per_candidate(blurs[s] - blurs[2 * s])
            cols += [d[:, self._near2].max(axis=1), d[:, self._near4].mean(axis=1, dtype=f8)]
        out = np.zeros((n, len(SURROUND_FEATURES)))
        out[:, : len(cols)] = np.stack(cols, axis=1)
        for k, ((cy, cx), (rows, cols_)) in enumerate(zip(corners, pixels, strict=True)):
            out[k, len(cols) :] = self._candidate(
                ims[k],
                bone[k],
                gm[k].reshape(side, side),
                np.asarray(rows) - cy + h,
                np.asarray(cols_) - cx + h,
            )
        return out

    def _candidate(
        self, im: np.ndarray, bone: np.ndarray, gm: np.ndarray, ry: np.ndarray, rx: np.ndarray
    ) -> list[float]:
        """The descriptors over a candidate's own pixels (patch coordinates) and beyond."""
        sp, side = self.sp, 2 * self.half
        m = np.zeros(im.shape, np.uint8)
        ok = (ry >= 0) & (ry < side) & (rx >= 0) & (rx < side)
        m[ry[ok], rx[ok]] = 1
        inside = m > 0
        if not inside.any():
            return [0.0] * 10
        near = cv2.dilate(m, self._band_kernel) > 0
        ring = near & ~inside
        lvl_in = float(im[inside].mean())
        lvl_around = float(im[ring].mean()) if ring.any() else lvl_in
        out = [lvl_in, lvl_around, lvl_in - lvl_around, float(inside.mean())]
        out += [float(bone[near].mean())]
        out += [float(gm[ring].mean()) if ring.any() else 0.0, float(gm[inside].mean())]
        dist = cv2.distanceTransform((~near).view(np.uint8), cv2.DIST_L2, 3) * sp
        far = (dist > 2.0) & (dist < 6.0)
        if far.any():
            q10, q90 = percentiles(im[far], (10, 90))
            out += [float(gm[far].mean()), float(percentiles(gm[far], 90)), q90 - q10]
        else:
            out += [0.0, 0.0, 0.0]
        return out
