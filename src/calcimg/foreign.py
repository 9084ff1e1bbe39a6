"""Foreign bodies on a radiograph: lead markers, burned-in text and metal.

Part of stage 2 (:mod:`calcimg.anatomy`): :func:`find_foreign` works on the anatomy grid
and returns the mask of foreign bodies (never reported as calcification) and their list
as :class:`~calcimg.result.Confounder` entries (``DOMAIN.md``, "Confounders that look like
calcification").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from calcimg.result import Confounder

if TYPE_CHECKING:
    from calcimg.anatomy import AnatomyParams

__all__ = ["ForeignBodies", "find_foreign"]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ForeignBodies:
    """Foreign bodies found on the anatomy grid.

    Attributes
    ----------
    mask : numpy.ndarray
        bool (grid rows, grid columns): pixels of markers, text and metal (grown by
        ``foreign_dilate_mm``).
    confounders : tuple of Confounder
        One entry per object (boxes in film pixels), plus the collimated band if any.
    """

    mask: np.ndarray
    confounders: tuple[Confounder, ...]


def _disc(diameter_px: float) -> np.ndarray:
    d = max(1, int(round(diameter_px)) | 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))


def _keep_large(mask: np.ndarray, min_px: float) -> np.ndarray:
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.astype(bool)
    keep = np.zeros(n, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_px
    return keep[lab]


def _film_bbox(
    y: int, x: int, bh: int, bw: int, fr: float, fc: float, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """A grid box (top, left, height, width) as film pixels (row0, col0, row1, col1)."""
    return (
        int(y * fr),
        int(x * fc),
        min(shape[0], int(np.ceil((y + bh) * fr))),
        min(shape[1], int(np.ceil((x + bw) * fc))),
    )


def find_foreign(
    img: np.ndarray,
    *,
    body: np.ndarray,
    bone: np.ndarray,
    collimation: np.ndarray,
    spacing_mm: float,
    film_shape: tuple[int, int],
    params: AnatomyParams,
) -> ForeignBodies:
    """Find lead markers, burned-in text and metal on the anatomy grid.

    Parameters
    ----------
    img : numpy.ndarray
        float32 (rows, columns): the film on the anatomy grid, normalised to its value
        range (0 = least, 1 = most attenuation).
    body, bone, collimation : numpy.ndarray
        bool, ``img``-shaped: the body, its large bones and the collimated band.
    spacing_mm : float
        The grid's (isotropic) spacing, mm.
    film_shape : tuple of int
        (rows, columns) of the film, to state the boxes in film pixels.
    params : AnatomyParams
        The ``foreign_*``, ``marker_*``, ``text_*`` and ``metal_*`` parameters.

    Returns
    -------
    ForeignBodies
    """
    p = params
    sp = spacing_mm
    h, w = img.shape
    px_area = sp * sp
    collim = collimation
    sat = (img >= p.foreign_frac) & ~collim
    if bone.any():
        bvals = img[bone]
        soft_vals = img[body & ~bone]
        soft_level = float(np.median(soft_vals)) if soft_vals.size else float(np.median(bvals))
        b995 = float(np.percentile(bvals, 99.5))
        dense = img > b995 + p.foreign_bone_margin * max(float(np.median(bvals)) - soft_level, 0.0)
        sat |= dense & ~collim
    foreign = _keep_large(sat, p.foreign_min_area_mm2 / px_area)
    n_f, lab_f, st_f, _ = cv2.connectedComponentsWithStats(foreign.astype(np.uint8), connectivity=8)
    confounders: list[Confounder] = []
    fr, fc = film_shape[0] / h, film_shape[1] / w
    keep_f = np.zeros(n_f, dtype=bool)
    for i in range(1, n_f):
        area = float(st_f[i, cv2.CC_STAT_AREA]) * px_area
        if area > p.foreign_max_area_mm2:
            continue
        keep_f[i] = True
        x, y, bw, bh = (int(v) for v in st_f[i, :4])
        extent = max(bw, bh) * sp
        inside = bool(body[min(y + bh // 2, h - 1), min(x + bw // 2, w - 1)])
        kind = "marker" if extent <= p.text_max_mm and not inside else "metal"
        bbox = _film_bbox(y, x, bh, bw, fr, fc, film_shape)
        confounders.append(Confounder(kind=kind, bbox=bbox, area_mm2=round(area, 2)))
    foreign = keep_f[lab_f]
    if p.foreign_dilate_mm > 0 and foreign.any():
        foreign = cv2.dilate(foreign.astype(np.uint8), _disc(2 * p.foreign_dilate_mm / sp + 1)) > 0
    if collim.any():
        confounders.append(_collimation_confounder(collim, fr, fc, px_area, film_shape))
    return ForeignBodies(mask=foreign, confounders=tuple(confounders))


def _collimation_confounder(
    collim: np.ndarray, fr: float, fc: float, px_area: float, shape: tuple[int, int]
) -> Confounder:
    rows = np.flatnonzero(collim.any(axis=1))
    cols = np.flatnonzero(collim.any(axis=0))
    bbox = _film_bbox(
        int(rows[0]),
        int(cols[0]),
        int(rows[-1] + 1 - rows[0]),
        int(cols[-1] + 1 - cols[0]),
        fr,
        fc,
        shape,
    )
    return Confounder(
        kind="collimation", bbox=bbox, area_mm2=round(float(collim.sum()) * px_area, 1)
    )
