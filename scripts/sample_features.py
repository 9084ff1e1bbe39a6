"""Feature tables for a folder of synthetic samples (``sample_dicoms/``, ``/work/data/*``).

Writes, into OUTDIR:

* ``batch_truth.csv``: a pyradiomics-style batch file, one line per ``NAME.dcm`` with
  its truth mask ``NAME.mask.png`` as ``Mask`` plus ``seed``, ``anatomy`` and
  ``truth_flag`` from ``NAME.truth.json`` (copied into every output row), and
  ``batch_detector.csv``, the same without masks;
* ``truth_findings.csv`` / ``.parquet``: features of the truth lesions (user masks);
* ``detector_findings.csv`` / ``.parquet``: features of calcimg's own findings;
* ``detector_images.csv`` / ``.parquet``: one row per image.

Usage: PYTHONPATH=src python scripts/sample_features.py sample_dicoms/ OUTDIR [--jobs N]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from calcimg.cli import main as calcimg_main


def write_batches(folder: Path, outdir: Path) -> tuple[Path, Path, int]:
    """batch_truth.csv (with the truth masks) and batch_detector.csv (without)."""
    rows = []
    for dcm in sorted(folder.glob("*.dcm")):
        mask = dcm.with_name(dcm.stem + ".mask.png")
        truth_path = dcm.with_name(dcm.stem + ".truth.json")
        truth = json.loads(truth_path.read_text()) if truth_path.is_file() else {}
        rows.append(
            {
                "Image": str(dcm.resolve()),
                "Mask": str(mask.resolve()) if mask.is_file() else "",
                "seed": truth.get("seed", ""),
                "anatomy": truth.get("anatomy", ""),
                "truth_flag": truth.get("flag", ""),
            }
        )
    paths = (outdir / "batch_truth.csv", outdir / "batch_detector.csv")
    for path, keep_mask in zip(paths, (True, False), strict=True):
        fields = ["Image", "Mask", "seed", "anatomy", "truth_flag"]
        if not keep_mask:
            fields.remove("Mask")
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return paths[0], paths[1], len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--jobs", default="1")
    args = ap.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    truth, detector, n = write_batches(args.folder, args.outdir)
    print(f"{n} samples: {truth}, {detector}")
    runs = [
        (truth, "finding", "truth_findings"),
        (detector, "finding", "detector_findings"),
        (detector, "image", "detector_images"),
    ]
    for suffix in ("csv", "parquet"):
        for batch, level, name in runs:
            out = args.outdir / f"{name}.{suffix}"
            argv = ["features", str(batch), "--level", level, "--out", str(out)]
            calcimg_main([*argv, "--jobs", args.jobs, "--overwrite"])


if __name__ == "__main__":
    main()
