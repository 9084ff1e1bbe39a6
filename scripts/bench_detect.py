"""Benchmark of the analysis (anatomy + detection, excluding decode) of a 3000x3000 film.

The film is the real pydicom-data CR RG3_UNCR.dcm (lower leg), resampled to 3000x3000
pixels at 0.1167 mm (the same 350 mm field), so that the anatomy is realistic. Reports
the median wall time of ``--repeats`` runs on one core (OpenCV limited to one thread).

    PYTHONPATH=src python scripts/bench_detect.py [--repeats 7] [--profile]
        [--source RG1_UNCR.dcm] [--set detect.confidence_model=]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
import time
import warnings

import cv2
import numpy as np

from calcimg.anatomy import map_anatomy
from calcimg.config import load_config
from calcimg.detect import detect
from calcimg.radiograph import Radiograph, SpacingSource


def film(size: int = 3000, source: str = "RG3_UNCR.dcm") -> Radiograph:
    """A pydicom-data CR (RG3_UNCR: lower leg; RG1_UNCR: chest) resampled to ``size`` x
    ``size`` over the same field."""
    from pydicom.data import get_testdata_file

    from calcimg.ingest import read_radiograph

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        rg = read_radiograph(get_testdata_file(source))
        logging.disable(logging.NOTSET)
    px = cv2.resize(rg.pixels, (size, size), interpolation=cv2.INTER_CUBIC)
    spacing = rg.pixel_spacing_mm[0] * rg.shape[0] / size
    return Radiograph(
        pixels=px.astype(np.float32),
        pixel_spacing_mm=(spacing, spacing),
        spacing_source=SpacingSource.USER,
        calibrated=False,
        value_range=rg.value_range,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--size", type=int, default=3000)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one run")
    ap.add_argument(
        "--source",
        default="RG3_UNCR.dcm",
        help="pydicom-data film to resample (RG3_UNCR.dcm lower leg, RG1_UNCR.dcm chest)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        help="stage.name=value override (to time a variant against the shipped parameters)",
    )
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    config = load_config(overrides=args.set)
    rg = film(args.size, args.source)
    times_a, times_d = [], []
    n_found = 0
    for _ in range(args.repeats):
        # a new film each run: the bone model's film planes are kept for the last film
        # (calcimg.bonemodel), and a repeat must pay for them as a new film does
        rg = dataclasses.replace(rg, pixels=rg.pixels.copy())
        t0 = time.perf_counter()
        amap = map_anatomy(rg, params=config.anatomy)
        t1 = time.perf_counter()
        dets = detect(rg, amap, params=config.detect)
        t2 = time.perf_counter()
        times_a.append(t1 - t0)
        times_d.append(t2 - t1)
        n_found = len(dets.items)
    total = [a + d for a, d in zip(times_a, times_d, strict=True)]
    print(
        f"{args.source} {args.size}x{args.size} at {rg.pixel_spacing_mm[0]:.4f} mm, "
        f"{args.repeats} runs, 1 thread: "
        f"anatomy {statistics.median(times_a):.3f} s, detect {statistics.median(times_d):.3f} s, "
        f"total median {statistics.median(total):.3f} s (min {min(total):.3f} s); "
        f"{n_found} finding(s)"
    )
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        detect(rg, map_anatomy(rg, params=config.anatomy), params=config.detect)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
