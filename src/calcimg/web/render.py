"""Display renderings of a radiograph for the browser: film PNGs, thumbnails, outlines.

The film is kept as a 16-bit display base (canonical pixels scaled from the radiograph's
``value_range`` to 0..65535, at most ``max_side`` pixels on the long side) so that any
window can be rendered to an 8-bit PNG in a few tens of milliseconds without decoding the
DICOM again. Windows are given in normalised units: centre and width as fractions of the
value range, so that the browser does not need to know the bit depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from calcimg.radiograph import Radiograph
from calcimg.result import Finding

__all__ = [
    "default_window",
    "display_base",
    "finding_outlines",
    "render_png",
    "thumbnail_png",
]

_U16 = 65535.0


def display_base(rg: Radiograph, *, max_side: int = 2048) -> np.ndarray:
    """The radiograph as uint16 (higher = brighter), downscaled to ``max_side`` at most.

    Downscaling is bilinear: area averaging costs about 100 ms more on a 3000 x 3000
    film, which is a third of the time budget between C-STORE and the worklist.
    """
    pixels = rg.pixels
    rows, cols = pixels.shape
    scale = min(1.0, max_side / max(rows, cols))
    if scale < 1.0:
        size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR)
    lo, hi = rg.value_range
    gain = _U16 / (hi - lo) if hi > lo else 1.0
    out = (pixels - np.float32(lo)) * np.float32(gain) + np.float32(0.5)
    np.clip(out, 0.0, _U16, out=out)
    return out.astype(np.uint16)


def default_window(rg: Radiograph, base: np.ndarray) -> tuple[float, float]:
    """(centre, width) in normalised units: the file's VOI window, else the 1-99 % range.

    A VOI window covering less than 1 % of the range, or lying outside it, is ignored:
    some exports carry placeholder windows.
    """
    lo, hi = rg.value_range
    if rg.voi_window is not None and hi > lo:
        wc = (rg.voi_window[0] - lo) / (hi - lo)
        ww = rg.voi_window[1] / (hi - lo)
        if 0.01 <= ww <= 2.0 and -0.5 <= wc <= 1.5:
            return float(wc), float(ww)
    sample = base[:: max(1, base.shape[0] // 512), :: max(1, base.shape[1] // 512)]
    p1, p99 = np.percentile(sample, [1.0, 99.0]) / _U16
    width = max(float(p99 - p1), 0.01)
    return float((p1 + p99) / 2.0), width


def _windowed(base: np.ndarray, wc: float, ww: float) -> np.ndarray:
    ww = max(float(ww), 1e-4)
    lut_x = np.arange(65536, dtype=np.float32) / np.float32(_U16)
    lut = np.clip((lut_x - (wc - ww / 2.0)) / ww, 0.0, 1.0) * 255.0
    out: np.ndarray = np.round(lut).astype(np.uint8)[base]
    return out


def render_png(base: np.ndarray, wc: float, ww: float) -> bytes:
    """An 8-bit grayscale PNG of ``base`` under window (``wc``, ``ww``) (normalised)."""
    params = [
        cv2.IMWRITE_PNG_COMPRESSION,
        1,
        cv2.IMWRITE_PNG_STRATEGY,
        cv2.IMWRITE_PNG_STRATEGY_RLE,
    ]
    ok, buf = cv2.imencode(".png", _windowed(base, wc, ww), params)
    if not ok:  # pragma: no cover - OpenCV only fails on invalid arrays
        raise ValueError("PNG encoding failed")
    return bytes(buf)


def finding_outlines(
    label_mask: np.ndarray | None, findings: Sequence[Finding]
) -> list[dict[str, Any]]:
    """Outline polygons of each finding, in source-image pixel coordinates.

    Returns one entry per finding: ``{"id", "bbox", "polygons"}`` where each polygon
    is a list of ``[x, y]`` = ``[col, row]`` vertices (pixel edges, SVG convention).
    Without a label mask (results read from JSON) the bounding box is the outline.
    """
    out: list[dict[str, Any]] = []
    for f in findings:
        r0, c0, r1, c1 = f.bbox
        polygons: list[list[list[float]]] = []
        if label_mask is not None:
            pad = 1
            rr0, cc0 = max(r0 - pad, 0), max(c0 - pad, 0)
            rr1 = min(r1 + pad, label_mask.shape[0])
            cc1 = min(c1 + pad, label_mask.shape[1])
            crop = (label_mask[rr0:rr1, cc0:cc1] == f.id).astype(np.uint8)
            # upscale 2x so that contours follow pixel edges, not pixel centres
            big = cv2.resize(crop, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
            contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            for cnt in contours:
                pts = cnt.reshape(-1, 2).astype(np.float64)
                if len(pts) > 60:
                    pts = cv2.approxPolyDP(pts.astype(np.float32), 1.0, True).reshape(-1, 2)
                poly = [
                    [round(cc0 + (float(x) + 0.5) / 2.0, 1), round(rr0 + (float(y) + 0.5) / 2.0, 1)]
                    for x, y in pts
                ]
                if len(poly) >= 2:
                    polygons.append(poly)
        if not polygons:
            polygons = [[[c0, r0], [c1, r0], [c1, r1], [c0, r1]]]
        out.append({"id": f.id, "bbox": [r0, c0, r1, c1], "polygons": polygons})
    return out


def thumbnail_png(
    base: np.ndarray,
    wc: float,
    ww: float,
    outlines: Sequence[dict[str, Any]],
    source_shape: tuple[int, int],
    *,
    side: int = 192,
) -> bytes:
    """A small colour PNG of the film with findings outlined in red."""
    img = _windowed(base, wc, ww)
    scale = side / max(img.shape)
    size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    rgb = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
    to_thumb = size[0] / source_shape[1]
    for item in outlines:
        for poly in item["polygons"]:
            pts = np.round(np.asarray(poly, dtype=np.float64) * to_thumb).astype(np.int32)
            cv2.polylines(rgb, [pts.reshape(-1, 1, 2)], True, (40, 40, 230), 1, cv2.LINE_AA)
        # tiny findings vanish at thumbnail scale: box them with at least 8 pixels
        r0, c0, r1, c1 = (v * to_thumb for v in item["bbox"])
        cy, cx, half = (r0 + r1) / 2, (c0 + c1) / 2, max((r1 - r0) / 2, (c1 - c0) / 2, 4) + 2
        p0 = (round(cx - half), round(cy - half))
        p1 = (round(cx + half), round(cy + half))
        cv2.rectangle(rgb, p0, p1, (40, 40, 230), 1)
    ok, buf = cv2.imencode(".png", rgb)
    if not ok:  # pragma: no cover
        raise ValueError("PNG encoding failed")
    return bytes(buf)
