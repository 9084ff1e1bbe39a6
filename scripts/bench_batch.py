"""Benchmark ``calcimg analyze`` on a generated folder: 1 and 2 workers, and Dask.

For each configuration, runs a fresh batch into its own output folder and reports
wall time, images/s (results computed per second of wall time, start-up included) and
the peak resident memory of the whole process tree (the main process plus every worker,
sampled every 50 ms with psutil), and the CPU seconds spent by the main process and by
its child processes once they have exited (local workers; for Dask the LocalCluster's
nanny and worker processes, whose own overhead is included; the LocalCluster's scheduler
runs in the main process). A machine-ceiling control (pure CPU work in 1 vs 2 processes)
says how much parallel speed-up the machine itself allows at the time of the run.

Usage::

    PYTHONPATH=src python scripts/bench_batch.py [--n 200] [--size 2000x1600] [--keep DIR]
    PYTHONPATH=src python scripts/bench_batch.py --input /work/data/tune

The generated films are uint16 CR files (MONOCHROME2, 0.15 mm Imager Pixel Spacing) of
the given size, with a bone band and noise; a folder given with --input is used as is.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from calcimg.batch import BatchOptions, run_batch

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def make_films(folder: Path, n: int, rows: int, cols: int) -> None:
    """Write ``n`` synthetic CR films into ``folder`` (nested 20 per sub-folder)."""
    rng = np.random.default_rng(0)
    base = rng.normal(800, 30, (rows, cols)).astype(np.float32)
    for i in range(n):
        img = base + rng.normal(0, 5, (rows, cols)).astype(np.float32)
        c0 = cols // 3 + i % 50
        img[:, c0 : c0 + cols // 5] += 1500
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CR_STORAGE
        uid = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = CR_STORAGE, uid
        ds.StudyInstanceUID = ds.SeriesInstanceUID = generate_uid()
        ds.Modality, ds.BodyPartExamined = "CR", "KNEE"
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.ImagerPixelSpacing = [0.15, 0.15]
        ds.PixelData = np.clip(img, 0, 4095).astype(np.uint16).tobytes()
        path = folder / f"batch{i // 20:03d}" / f"film{i:04d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)


class PeakRSS:
    """Sample the RSS of this process and all its descendants; keep the peak."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a worker may just have exited
                    total += p.memory_info().rss
            self.peak = max(self.peak, total)
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _spin(_: int) -> int:
    total = 0
    for i in range(2_000_000):
        total += i
    return total


def machine_ceiling(tasks: int = 16) -> float:
    """Speed-up of 2 processes over 1 on pure CPU work, measured now.

    On a machine shared with other jobs the cores may not be free; this control says how
    much of the 2-worker figure the machine itself allows.
    """
    import concurrent.futures as cf
    import multiprocessing

    rates = []
    for n in (1, 2):
        with cf.ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as ex:
            list(ex.map(_spin, range(n)))  # start the workers first
            t = time.perf_counter()
            list(ex.map(_spin, range(tasks)))
            rates.append(tasks / (time.perf_counter() - t))
    return rates[1] / rates[0]


def bench(folder: Path, out: Path, *, workers: int, scheduler: str | None) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    opts = BatchOptions(out_dir=out, workers=workers, scheduler=scheduler, report=True)
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with PeakRSS() as mem:
        s = run_batch([folder], opts, tty=False, progress_stream=sys.stderr)
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    main_cpu = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    # Children count once they have been waited for: pool workers are joined at the end.
    kids_cpu = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    return {
        "main_cpu_s": main_cpu,
        "workers_cpu_s": kids_cpu,
        "images": s.computed,
        "errors": s.errors,
        "time_s": s.elapsed_s,
        "images_per_s": s.images_per_s,
        "peak_rss_mb": mem.peak / 1e6,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="films to generate (default 200)")
    ap.add_argument("--size", default="2000x1600", help="rows x columns (default 2000x1600)")
    ap.add_argument("--input", type=Path, help="benchmark this folder instead of generating")
    ap.add_argument("--keep", type=Path, help="keep generated films and outputs here")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster run")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="calcimg-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.input:
        folder = args.input
        what = f"{folder}"
    else:
        rows, cols = (int(v) for v in args.size.lower().split("x"))
        folder = work / "films"
        if not folder.exists():
            make_films(folder, args.n, rows, cols)
        what = f"{args.n} generated CR films of {rows} x {cols} px (uint16)"
    runs: list[tuple[str, int, str | None]] = [
        ("local, 1 worker", 1, None),
        ("local, 2 workers", 2, None),
    ]
    if not args.no_dask:
        runs.append(("dask LocalCluster, 2 workers", 2, "local"))
    ceiling_before = machine_ceiling()
    figures = {}
    for name, workers, scheduler in runs:
        figures[name] = bench(
            folder,
            work / f"out-{workers}-{scheduler or 'local'}",
            workers=workers,
            scheduler=scheduler,
        )
    print(f"\ninput: {what}")
    print(
        f"{'configuration':32s} {'images':>6s} {'time s':>7s} {'img/s':>7s} "
        f"{'peak RSS MB':>11s} {'main CPU s':>10s} {'worker CPU s':>12s}"
    )
    for name, f in figures.items():
        print(
            f"{name:32s} {f['images']:6.0f} {f['time_s']:7.1f} {f['images_per_s']:7.2f} "
            f"{f['peak_rss_mb']:11.0f} {f['main_cpu_s']:10.1f} {f['workers_cpu_s']:12.1f}"
        )
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()} on {os.cpu_count()} cores")
    one = figures["local, 1 worker"]["images_per_s"]
    two = figures["local, 2 workers"]["images_per_s"]
    ceiling_after = machine_ceiling()
    print(f"speed-up 2 workers / 1 worker: {two / one:.2f}x (target >= 1.7x)")
    print(
        f"machine ceiling (pure CPU, 2 vs 1 process) before/after: {ceiling_before:.2f}x / "
        f"{ceiling_after:.2f}x"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
