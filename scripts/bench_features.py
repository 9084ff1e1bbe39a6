"""Throughput of feature extraction once findings are known (issue 7: >= 5 images/s/core).

Builds synthetic 2000 x 2000 radiographs (noisy soft tissue, 0.15 mm pixels) with about
20 drawn findings each (disks, ellipses, lines, speckle clusters, tram-tracks), then
times :func:`calcimg.features.region_features` plus the image-level row on their label
masks, in one process (one core). Detection, anatomy and file reading are not timed.

Usage: PYTHONPATH=src python scripts/bench_features.py [--images N] [--findings K]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from calcimg.features.extract import image_row
from calcimg.features.region import FeatureParams, region_features
from calcimg.radiograph import Radiograph, SpacingSource


def synthetic(seed: int, n_findings: int) -> tuple[Radiograph, np.ndarray]:
    rng = np.random.default_rng(seed)
    size = 2000
    pixels = rng.normal(800.0, 30.0, (size, size)).astype(np.float32)
    labels = np.zeros((size, size), np.int32)
    for k in range(1, n_findings + 1):
        layer = np.zeros((size, size), np.uint8)
        r, c = (int(v) for v in rng.integers(100, size - 100, 2))
        kind = k % 5
        if kind == 0:
            cv2.circle(layer, (c, r), int(rng.integers(5, 40)), 1, -1)
        elif kind == 1:
            axes = (int(rng.integers(10, 60)), int(rng.integers(4, 20)))
            cv2.ellipse(layer, (c, r), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        elif kind == 2:
            d = rng.integers(-80, 80, 2)
            cv2.line(layer, (c, r), (c + int(d[0]), r + int(d[1])), 1, int(rng.integers(1, 4)))
        elif kind == 3:
            for _ in range(int(rng.integers(5, 30))):
                dr, dc = (int(v) for v in rng.integers(-40, 40, 2))
                cv2.circle(layer, (c + dc, r + dr), int(rng.integers(1, 4)), 1, -1)
        else:
            d = rng.integers(-90, 90, 2)
            for off in (0, 12):
                cv2.line(layer, (c, r + off), (c + int(d[0]), r + off + int(d[1])), 1, 2)
        on = (layer > 0) & (labels == 0)
        labels[on] = k
        pixels[on] += np.float32(rng.uniform(150, 900))
    rg = Radiograph(
        pixels=pixels,
        pixel_spacing_mm=(0.15, 0.15),
        spacing_source=SpacingSource.PIXEL_SPACING,
        calibrated=True,
    )
    return rg, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--findings", type=int, default=20)
    args = ap.parse_args()
    cv2.setNumThreads(1)  # one core, as the target is per core (CPU time is reported too,
    # since the wall clock on a shared machine counts other people's work)
    params = FeatureParams()
    data = [synthetic(i, args.findings) for i in range(args.images)]
    region_features(*data[0], params=params)  # warm-up (imports, caches)
    # a soft-tissue mask as the extractor passes it (everything but a bone band)
    soft = np.ones((2000, 2000), bool)
    soft[:, 900:1100] = False
    n_regions = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    for rg, labels in data:
        regions = region_features(rg, labels, params=params, ring_mask=soft)
        image_row({}, regions, rg, params=params, soft_tissue_px=int(labels.size))
        n_regions += len(regions)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    print(
        f"{args.images} images of 2000x2000, {n_regions} regions: wall {elapsed:.2f} s "
        f"({args.images / elapsed:.1f} images/s), CPU {cpu:.2f} s "
        f"({args.images / cpu:.1f} images/s per core; {1000 * cpu / args.images:.0f} ms/image)"
    )


if __name__ == "__main__":
    main()
