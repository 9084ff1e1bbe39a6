"""Projection physics: from line integrals to a processed CR/DX image.

Transmitted primary ``N0 * heel * exp(-atten)``, scatter as a broad low-pass fraction of the
primary, Poisson quantum noise, detector blur (0.10-0.15 mm), then the log transform and
the multi-scale equalisation every CR/DX workstation applies before storing "for
presentation" images, and quantisation to 12-14 bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from calcimg.synth.geometry import blur_large

__all__ = ["Exposure", "expose"]


@dataclass(frozen=True, slots=True)
class Exposure:
    photons_per_mm2: float
    heel: float
    scatter_fraction: float
    blur_mm: float
    equalization: float
    bits: int


def expose(
    atten: np.ndarray,
    body: np.ndarray,
    field_mask: np.ndarray | None,
    spacing_mm: float,
    rng: np.random.Generator,
    *,
    bits: int,
) -> tuple[np.ndarray, Exposure]:
    """Simulate the exposure and processing; returns stored-value pixels (uint16,
    higher = more attenuation) and the exposure parameters used."""
    s = spacing_mm
    h, w = atten.shape
    sub = (slice(None, None, 3), slice(None, None, 3))  # percentiles on a 1/9 subsample
    body_s = body[sub]
    # automatic exposure control: aim for ~1500-5000 quanta per pixel behind the body
    l_body = float(np.median(atten[sub][body_s])) if body_s.any() else 0.0
    target = rng.uniform(1500, 5000)
    n0 = target * float(np.exp(l_body))
    heel = rng.uniform(-0.2, 0.2)
    ramp = (
        np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
        if rng.random() < 0.5
        else np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    )
    primary = np.exp(-atten.astype(np.float32))
    primary *= (n0 * (1.0 + heel * ramp)).astype(np.float32)
    if field_mask is not None:
        pen = blur_large(field_mask.astype(np.float32), max(0.8 / s, 1.0))
        primary *= 0.015 + 0.985 * pen
    spr = rng.uniform(0.15, 0.6)
    small = cv2.resize(primary, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
    sig = rng.uniform(25, 50) / (s * 8)
    scatter = cv2.resize(
        cv2.GaussianBlur(small, (0, 0), sig), (w, h), interpolation=cv2.INTER_LINEAR
    )
    primary += spr * scatter  # expected quanta
    # Poisson quanta (Gaussian approximation is exact enough above ~20 quanta)
    noise = rng.standard_normal((h, w), dtype=np.float32)
    noise *= np.sqrt(np.maximum(primary, 1.0))
    primary += noise
    primary += rng.standard_normal((h, w), dtype=np.float32) * 3.0  # electronic noise
    blur_mm = rng.uniform(0.10, 0.15)
    noisy = cv2.GaussianBlur(primary, (0, 0), blur_mm / s)
    np.maximum(noisy, 1.0, out=noisy)
    d = np.log(noisy)
    d *= -1.0
    d += np.float32(np.log(n0 * 1.2))
    # workstation processing: large-scale equalisation plus mild edge enhancement
    eq = rng.uniform(0.35, 0.65)
    base = blur_large(d, rng.uniform(10, 25) / s)
    ref = float(np.median(d[sub][body_s])) if body_s.any() else float(np.median(d[sub]))
    base -= ref
    base *= eq
    d -= base
    gamma = rng.uniform(0.0, 0.6)
    detail = d - blur_large(d, rng.uniform(1.0, 2.5) / s)
    detail *= gamma
    d += detail
    exposed = field_mask[sub] if field_mask is not None else np.ones(body_s.shape, bool)
    ds = d[sub]
    lo = float(np.percentile(ds[exposed], 0.2))
    inside = exposed & body_s
    hi = float(np.percentile(ds[inside], 99.95)) if inside.any() else float(ds.max())
    hi = lo + (hi - lo) * rng.uniform(1.05, 1.25)
    top = (1 << bits) - 1
    d -= lo
    d *= top / max(hi - lo, 1e-6)
    np.clip(d, 0, top, out=d)
    out = np.rint(d).astype(np.uint16)
    return out, Exposure(n0 / (s * s), heel, spr, blur_mm, eq, bits)
