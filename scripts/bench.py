#!/usr/bin/env python3
"""Benchmark every calcimg stage against the floor, on one core.

For films of 2, 5 and 9 megapixels in each common transfer syntax, runs the pipeline
stage by stage several times and reports the median and spread of each stage
(decode, anatomy, detect, describe, rules, outputs), milliseconds per megapixel, peak
RSS per pixel (growth over a process warmed on a 0.1 MP film of the same syntax, so
that modules and decoders loaded on first use do not count per pixel) and the
whole-image latency; plus the floor: decode alone, and a minimal detection pass (one
OpenCV white top-hat, a threshold, connected components)
on the same image, and calcimg's ratio to that floor.

Each (size, syntax) runs in a fresh single-threaded subprocess so that its peak RSS is
its own and no stage borrows the second core.

Usage::

    python scripts/bench.py [--sizes 2 5 9] [--syntaxes uncompressed rle ...]
                            [--repeats 5] [--json bench_out/bench.json]
                            [--trace-memory]

The films are real radiograph content (pydicom-data's RG1 chest CR) resampled to the
target size, with a 0.15 mm Pixel Spacing; they are written once into ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "OPENCV_FOR_THREADS_NUM": "1",
}
SYNTAXES = {
    "uncompressed": "1.2.840.10008.1.2.1",
    "rle": "1.2.840.10008.1.2.5",
    "jpeg_lossless": "1.2.840.10008.1.2.4.70",
    "jpeg_ls": "1.2.840.10008.1.2.4.80",
    "jpeg2000": "1.2.840.10008.1.2.4.90",
}
STAGES = ("decode", "anatomy", "detect", "describe", "rules", "outputs")
WARM_MP = 0.1
"""Size of the film each worker analyses once before its RSS baseline."""


# ---------------------------------------------------------------------------- films


def make_film(megapixels: float, syntax: str, work: Path) -> Path:
    """Write (once) a CR film of about ``megapixels`` in ``syntax``; return its path."""
    path = work / f"film_{megapixels:g}mp_{syntax}.dcm"
    if path.exists():
        return path
    import cv2
    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    src = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    base = src.pixel_array.astype(np.float32)
    side = round((megapixels * 1e6) ** 0.5)
    img = cv2.resize(base, (side, side), interpolation=cv2.INTER_LINEAR)
    # 12-bit stored values, as most CR/DX detectors
    img = (img - img.min()) / max(float(np.ptp(img)), 1.0) * 4095.0
    arr = np.clip(np.rint(img), 0, 4095).astype(np.uint16)
    ds = src.copy()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.PixelSpacing = [0.15, 0.15]
    for kw in ("WindowCenter", "WindowWidth"):
        if kw in ds:
            del ds[kw]
    ds.PixelData = arr.tobytes()
    ts = UID(SYNTAXES[syntax])
    if syntax == "jpeg_lossless":
        # pydicom has no JPEG Lossless encoder; the sample generator's GDCM writer keeps
        # our own attributes (GDCM would add a 1\\1 mm Imager Pixel Spacing) and checks
        # the stream decodes losslessly.
        from calcimg.synth.dicomout import save_gdcm_jpeg_lossless

        save_gdcm_jpeg_lossless(ds, path, arr)
        return path
    if ts.is_compressed:
        ds.compress(ts)
    ds.save_as(path, enforce_file_format=True)
    return path


# --------------------------------------------------------------------------- worker


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def floor_pass(pixels: Any, spacing_mm: float) -> int:
    """The minimal detection pass: one white top-hat, a threshold, components."""
    import cv2
    import numpy as np

    k = max(3, round(3.0 / spacing_mm) | 1)  # a 3 mm structuring element
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    tophat = cv2.morphologyEx(pixels, cv2.MORPH_TOPHAT, kernel)
    thr = float(np.percentile(tophat[::8, ::8], 99.5))
    mask = (tophat > thr).astype(np.uint8)
    n, _ = cv2.connectedComponents(mask)
    return int(n)


def traced_peaks(path: Path, config: Any) -> dict[str, float]:
    """Each stage's peak of traced allocations (numpy's arrays and Python objects; not
    OpenCV's scratch buffers) above what was allocated before the film was read, in
    bytes per film pixel: where a stage's memory goes, which peak RSS cannot say."""
    import tracemalloc

    from calcimg.anatomy import map_anatomy
    from calcimg.describe import describe
    from calcimg.detect import detect
    from calcimg.ingest import read_radiograph

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    peaks: dict[str, float] = {}

    def mark(stage: str) -> None:
        peaks[stage] = float(tracemalloc.get_traced_memory()[1] - base)
        tracemalloc.reset_peak()

    rg = read_radiograph(path, params=config.ingest)
    mark("decode")
    anatomy = map_anatomy(rg, params=config.anatomy)
    mark("anatomy")
    dets = detect(rg, anatomy, params=config.detect)
    mark("detect")
    describe(rg, anatomy, dets, params=config.describe)
    mark("describe")
    tracemalloc.stop()
    pixels = rg.pixels.size
    return {k: v / pixels for k, v in peaks.items()}


def worker(
    path: Path, repeats: int, warm: Path | None = None, trace: bool = False
) -> dict[str, Any]:
    """Time each stage of one film ``repeats`` times (in this single-threaded process).

    ``warm``: a small film of the same transfer syntax analysed once before the RSS
    baseline is taken, so that the modules, decoders and caches loaded on first use
    (tens of MB, whatever the film's size) do not count as memory per pixel.
    """
    import cv2

    cv2.setNumThreads(1)
    import io

    from calcimg.process import steady_allocator

    steady_allocator()  # as the calcimg command and its batch workers do

    from calcimg.anatomy import map_anatomy
    from calcimg.config import load_config
    from calcimg.describe import describe
    from calcimg.detect import detect
    from calcimg.ingest import read_radiograph
    from calcimg.pipeline import analyze_radiograph
    from calcimg.report import ResultsWriter
    from calcimg.rules import rank

    config = load_config()
    if warm is not None:
        w_rg = read_radiograph(warm, params=config.ingest)
        w_res = analyze_radiograph(w_rg, config=config)
        with ResultsWriter(stream=io.StringIO()) as w:
            w.write(w_res)
        floor_pass(w_rg.pixels, w_rg.mean_spacing_mm)
        del w_rg, w_res
    baseline_mb = _rss_mb()
    times: dict[str, list[float]] = {
        s: [] for s in (*STAGES, "total", "floor_decode", "floor_detect")
    }
    shape: tuple[int, int] | None = None
    syntax_uid = None
    for _ in range(repeats + 1):  # the first run warms caches and is discarded
        t0 = time.perf_counter()
        rg = read_radiograph(path, params=config.ingest)
        syntax_uid = rg.transfer_syntax_uid
        t1 = time.perf_counter()
        anatomy = map_anatomy(rg, params=config.anatomy)
        t2 = time.perf_counter()
        dets = detect(rg, anatomy, params=config.detect)
        t3 = time.perf_counter()
        descs = describe(rg, anatomy, dets, params=config.describe)
        t4 = time.perf_counter()
        rank(descs, context=None, params=config.rules)
        t5 = time.perf_counter()
        result = analyze_radiograph(rg, config=config)
        t5b = time.perf_counter()
        with ResultsWriter(stream=io.StringIO()) as w:
            w.write(result)
        t6 = time.perf_counter()
        # floor: decode alone, and the minimal pass on the same canonical pixels
        f0 = time.perf_counter()
        read_radiograph(path, params=config.ingest)
        f1 = time.perf_counter()
        floor_pass(rg.pixels, rg.mean_spacing_mm)
        f2 = time.perf_counter()
        for key, value in (
            ("decode", t1 - t0),
            ("anatomy", t2 - t1),
            ("detect", t3 - t2),
            ("describe", t4 - t3),
            ("rules", t5 - t4),
            ("outputs", t6 - t5b),
            ("floor_decode", f1 - f0),
            ("floor_detect", f2 - f1),
        ):
            times[key].append(value * 1000.0)
        times["total"].append((t5 - t0 + t6 - t5b) * 1000.0)
        shape = rg.shape
        # release this iteration's film and results before the next one, so that the
        # peak RSS is that of one analysis (a service holds one film at a time), not
        # one analysis plus the previous iteration's film, maps and result
        del rg, anatomy, dets, descs, result
    assert shape is not None
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    # after the peak RSS is read: tracing slows every allocation and holds its records
    traced = traced_peaks(path, config) if trace else None
    return {
        "traced_bytes_per_pixel": traced,
        "file": path.name,
        "rows": shape[0],
        "columns": shape[1],
        "megapixels": shape[0] * shape[1] / 1e6,
        "transfer_syntax": syntax_uid,
        "ms": {k: v[1:] for k, v in times.items()},
        "baseline_rss_mb": baseline_mb,
        "peak_rss_mb": peak_mb,
    }


# --------------------------------------------------------------------------- report


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    mp = raw["megapixels"]
    med = {k: statistics.median(v) for k, v in raw["ms"].items()}
    spread = {k: (min(v), max(v)) for k, v in raw["ms"].items()}
    analysis = sum(med[s] for s in ("anatomy", "detect", "describe", "rules"))
    floor = med["floor_detect"]
    pixels = raw["rows"] * raw["columns"]
    return {
        **{k: raw[k] for k in ("file", "rows", "columns", "megapixels", "transfer_syntax")},
        "median_ms": med,
        "min_max_ms": spread,
        "analysis_ms": analysis,
        "analysis_ms_per_mp": analysis / mp,
        "decode_ms_per_mp": med["decode"] / mp,
        "latency_ms": med["total"],
        "floor_detect_ms": floor,
        "ratio_to_floor": analysis / floor if floor > 0 else None,
        "peak_rss_mb": raw["peak_rss_mb"],
        "bytes_per_pixel": (raw["peak_rss_mb"] - raw["baseline_rss_mb"]) * 2**20 / pixels,
        "traced_bytes_per_pixel": raw.get("traced_bytes_per_pixel"),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'film':28s} {'MP':>4s} {'decode':>7s} {'anat':>7s} {'detect':>7s} "
        f"{'descr':>6s} {'rules':>6s} {'out':>5s} {'ana/MP':>7s} {'floor':>6s} "
        f"{'xfloor':>6s} {'B/px':>5s} {'latency':>8s}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        m = r["median_ms"]
        ratio = f"{r['ratio_to_floor']:.2f}" if r["ratio_to_floor"] else "-"
        print(
            f"{r['file']:28s} {r['megapixels']:4.1f} {m['decode']:7.1f} {m['anatomy']:7.1f} "
            f"{m['detect']:7.1f} {m['describe']:6.1f} {m['rules']:6.1f} {m['outputs']:5.1f} "
            f"{r['analysis_ms_per_mp']:7.1f} {r['floor_detect_ms']:6.1f} {ratio:>6s} "
            f"{r['bytes_per_pixel']:5.1f} {r['latency_ms']:8.1f}"
        )
    print(
        "(ms, medians; ana/MP = analysis excluding decode per megapixel; floor = one top-hat +"
        " threshold + components; xfloor = analysis / floor; B/px = peak RSS growth per pixel"
        " over a process that has analysed a 0.1 MP film of the same syntax)"
    )
    traced = [r for r in rows if r.get("traced_bytes_per_pixel")]
    if traced:
        stages = list(traced[0]["traced_bytes_per_pixel"])
        print()
        print(f"{'traced peak, bytes per pixel':28s} " + " ".join(f"{s:>8s}" for s in stages))
        for r in traced:
            t = r["traced_bytes_per_pixel"]
            print(f"{r['file']:28s} " + " ".join(f"{t[s]:8.1f}" for s in stages))
        print(
            "(--trace-memory: each stage's peak of numpy and Python allocations above those"
            " made before the film was read; OpenCV's scratch buffers are not traced)"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", type=float, default=[2, 5, 9], metavar="MP")
    p.add_argument("--syntaxes", nargs="+", default=list(SYNTAXES), choices=list(SYNTAXES))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--work", type=Path, default=None, help="where the films are written")
    p.add_argument("--json", type=Path, default=REPO / "bench_out" / "bench.json")
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--warm", type=Path, help=argparse.SUPPRESS)
    p.add_argument(
        "--trace-memory",
        action="store_true",
        help="after the timed runs, one traced run per film: each stage's peak allocations",
    )
    args = p.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.repeats, args.warm, args.trace_memory)))
        return 0
    work = args.work or Path(tempfile.gettempdir()) / "calcimg_bench"
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **SINGLE_THREAD_ENV)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    rows = []
    for mp in args.sizes:
        for syntax in args.syntaxes:
            film = make_film(mp, syntax, work)
            warm = make_film(WARM_MP, syntax, work)
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    str(film),
                    "--repeats",
                    str(args.repeats),
                    "--warm",
                    str(warm),
                    *(["--trace-memory"] if args.trace_memory else []),
                ],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if proc.returncode != 0:
                print(f"{film.name}: worker failed:\n{proc.stderr}", file=sys.stderr)
                return 1
            rows.append(summarize(json.loads(proc.stdout.strip().splitlines()[-1])))
            print(f"  measured {film.name}", file=sys.stderr, flush=True)
    print_table(rows)
    by_size: dict[float, list[float]] = {}
    for r in rows:
        by_size.setdefault(round(r["megapixels"], 1), []).append(r["analysis_ms_per_mp"])
    print(
        "analysis ms/MP by size (linearity): "
        + ", ".join(f"{k:g} MP: {statistics.median(v):.1f}" for k, v in sorted(by_size.items()))
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "cores": 1}, indent=2))
    print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
