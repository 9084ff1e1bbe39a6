"""Copies of a truth folder as other vendors and doses would have stored the same films.

The generator applies one kind of "for presentation" processing. Real CR/DX systems
differ: tone curves (gamma), edge enhancement (unsharp masking, e.g. Fuji's frequency
processing), and dose (quantum noise). This script re-processes every ``NAME.dcm`` of a
truth folder and copies its truth (``.truth.json``, ``.mask.png``, ``.anatomy.png``) so
that ``scripts/evaluate.py``, ``diagnose_detect.py`` and ``tune_detect2.py`` score the
variant exactly as they score the original.

Kinds (applied to attenuation-oriented values: MONOCHROME1 films are inverted first and
back after):

- ``noise``: Gaussian noise of 1.0 x the film's own pixel noise (robust spread of a
  3-pixel high-pass away from clipped pixels), i.e. about half the dose;
- ``gamma``: ``v = vmax (v / vmax) ** 0.6`` (a flatter tone curve: soft tissue lifted,
  bone compressed);
- ``unsharp``: ``v + 1.0 (v - G_2mm * v)`` (strong edge enhancement, overshoot at every
  edge);
- ``mixed``: per film, a random draw (seeded by ``--seed`` and the film's name) of gamma
  in [0.6, 1.4], unsharp amount in [0, 1.2] at sigma [1, 3] mm, and extra noise in [0,
  1] x the film's noise; each applied with probability 0.6;
- ``strong``: per film, always edge enhancement, amount in [0.5, 2.0] at sigma [1, 4]
  mm (some systems' frequency processing is stronger than ``unsharp``), with gamma in
  [0.6, 1.4] and extra noise in [0, 1] x the film's noise each with probability 0.5.

Use ``mixed`` and ``strong`` on fitting sets only (tune, tune2, the bone model's films),
the fixed kinds to score development sets. Pixels are written uncompressed (Explicit VR
Little Endian), same bits stored.

    PYTHONPATH=src python scripts/vendor_variants.py /work/data/dev /work/data/dev_gamma \
        --kind gamma
"""

from __future__ import annotations

import argparse
import json
import shutil
import zlib
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian

from calcimg.imageops import robust_sigma

KINDS = ("noise", "gamma", "unsharp", "mixed", "strong")
TRUTH_SUFFIXES = (".truth.json", ".mask.png", ".anatomy.png")


def pixel_noise(a: np.ndarray, vmax: float) -> float:
    """Robust spread (1.4826 MAD) of a 3-pixel Gaussian high-pass, over pixels at least 9
    pixels from any clipped (0 or ``vmax``) one: the quantum noise, not the flat zeros of
    saturated or unexposed film."""
    hp = a - cv2.GaussianBlur(a, (0, 0), 3.0)
    clipped = ((a <= 0) | (a >= vmax)).astype(np.uint8)
    inside = cv2.dilate(clipped, np.ones((19, 19), np.uint8)) == 0
    return robust_sigma(hp[inside] if inside.any() else hp, max_samples=None)


def process(
    a: np.ndarray,
    vmax: float,
    spacing_mm: float,
    *,
    gamma: float = 1.0,
    unsharp: float = 0.0,
    unsharp_mm: float = 2.0,
    noise: float = 0.0,
    rng: np.random.Generator,
) -> np.ndarray:
    """One film re-processed: added noise first (in units of the film's own pixel noise;
    quantum noise arises before any processing), then the tone curve, then edge
    enhancement; values clipped to [0, vmax]."""
    out = a.astype(np.float64)
    if noise > 0:
        out = out + rng.normal(0.0, noise * pixel_noise(out, vmax), out.shape)
    if gamma != 1.0:
        out = vmax * (np.clip(out, 0, vmax) / vmax) ** gamma
    if unsharp > 0:
        out = out + unsharp * (out - cv2.GaussianBlur(out, (0, 0), unsharp_mm / spacing_mm))
    return np.clip(np.round(out), 0, vmax)


def settings(kind: str, name: str, seed: int) -> tuple[dict[str, float], np.random.Generator]:
    """The processing for one film and the generator for its noise."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if kind == "noise":
        return {"noise": 1.0}, rng
    if kind == "gamma":
        return {"gamma": 0.6}, rng
    if kind == "unsharp":
        return {"unsharp": 1.0, "unsharp_mm": 2.0}, rng
    s: dict[str, float] = {}
    if kind == "strong":
        s["unsharp"] = float(rng.uniform(0.5, 2.0))
        s["unsharp_mm"] = float(rng.uniform(1.0, 4.0))
        if rng.random() < 0.5:
            s["gamma"] = float(rng.uniform(0.6, 1.4))
        if rng.random() < 0.5:
            s["noise"] = float(rng.uniform(0.0, 1.0))
        return s, rng
    if rng.random() < 0.6:
        s["gamma"] = float(rng.uniform(0.6, 1.4))
    if rng.random() < 0.6:
        s["unsharp"] = float(rng.uniform(0.0, 1.2))
        s["unsharp_mm"] = float(rng.uniform(1.0, 3.0))
    if rng.random() < 0.6:
        s["noise"] = float(rng.uniform(0.0, 1.0))
    return s, rng


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="truth folder (NAME.dcm + truth files)")
    ap.add_argument("dst", type=Path, help="output folder (created)")
    ap.add_argument("--kind", choices=KINDS, required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    paths = sorted(a.src.glob("*.dcm"))
    if not paths:
        raise SystemExit(f"{a.src}: no .dcm files (expected a truth folder)")
    a.dst.mkdir(parents=True, exist_ok=True)
    log = {}
    for p in paths:
        ds = pydicom.dcmread(p)
        if int(ds.get("PixelRepresentation", 0)) != 0 or int(ds.get("SamplesPerPixel", 1)) != 1:
            raise SystemExit(f"{p}: expected unsigned single-sample pixels (generated films)")
        vmax = float(2 ** int(ds.BitsStored) - 1)
        spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
        if not spacing:
            raise SystemExit(f"{p}: no PixelSpacing or ImagerPixelSpacing")
        arr = ds.pixel_array.astype(np.float64)
        mono1 = ds.PhotometricInterpretation == "MONOCHROME1"
        if mono1:
            arr = vmax - arr
        s, rng = settings(a.kind, p.stem, a.seed)
        out = process(arr, vmax, float(spacing[0]), rng=rng, **s)
        if mono1:
            out = vmax - out
        ds.PixelData = out.astype(np.uint16).tobytes()
        ds.BitsAllocated = 16
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(a.dst / p.name, enforce_file_format=True)
        for suffix in TRUTH_SUFFIXES:
            src = p.with_suffix(suffix)
            if src.exists():
                shutil.copy(src, a.dst / (p.stem + suffix))
        log[p.name] = s
    (a.dst / "variants.json").write_text(json.dumps({"kind": a.kind, "films": log}, indent=1))
    print(f"{a.dst}: {len(paths)} films ({a.kind})")


if __name__ == "__main__":
    main()
