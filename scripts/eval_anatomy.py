"""Score calcimg's anatomy map against the simulated truth (``NAME.anatomy.png``).

For every ``NAME.dcm`` of a truth folder: bone IoU, recall and precision against the
truth's bone, and the fraction of truth lesion pixels the map calls bone (the detector
never looks there). One line per film with ``-v``, then the means overall and per
anatomy.

    PYTHONPATH=src python scripts/eval_anatomy.py /work/data/tune [--set anatomy.k=v] [-v]

The truth codes are calcimg's ``Region`` codes (0 background, 1 soft tissue, 2 bone,
3 joint space, 4 foreign).
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import cv2
import numpy as np

from calcimg.anatomy import Region, map_anatomy
from calcimg.config import load_config
from calcimg.ingest import read_radiograph


def score(folder: Path, overrides: list[str], verbose: bool = False) -> dict[str, float]:
    """Mean bone IoU, recall, precision and lesion-in-bone fraction over the folder."""
    cfg = load_config(overrides=overrides)
    rows: list[tuple[str, float, float, float, float]] = []
    for path in sorted(folder.glob("*.dcm")):
        truth = json.loads(path.with_suffix(".truth.json").read_text())
        codes = cv2.imread(str(path.with_suffix(".anatomy.png")), cv2.IMREAD_UNCHANGED)
        lesions = cv2.imread(str(path.with_suffix(".mask.png")), cv2.IMREAD_UNCHANGED) > 0
        amap = map_anatomy(read_radiograph(str(path)), params=cfg.anatomy)
        ours = amap.labels == Region.BONE
        true = codes == Region.BONE
        inter = float((ours & true).sum())
        iou = inter / max(float((ours | true).sum()), 1.0)
        rec = inter / max(float(true.sum()), 1.0)
        prec = inter / max(float(ours.sum()), 1.0)
        in_bone = float((ours & lesions).sum()) / max(float(lesions.sum()), 1.0)
        rows.append((truth["anatomy"], iou, rec, prec, in_bone))
        if verbose:
            print(
                f"{path.name} {truth['anatomy']:>12} iou {iou:.3f} recall {rec:.3f} "
                f"precision {prec:.3f} lesion-in-bone {in_bone:.3f}"
            )
    by: dict[str, list[tuple[float, ...]]] = collections.defaultdict(list)
    for r in rows:
        by[r[0]].append(r[1:])
    for name, vals in sorted(by.items()):
        a = np.array(vals)
        print(
            f"{name:>12} ({len(a):2d}): iou {a[:, 0].mean():.3f} recall {a[:, 1].mean():.3f} "
            f"precision {a[:, 2].mean():.3f} lesion-in-bone {a[:, 3].mean():.3f}"
        )
    a = np.array([r[1:] for r in rows])
    names = ("iou", "recall", "precision", "lesion_in_bone")
    out = dict(zip(names, a.mean(axis=0).tolist(), strict=True))
    print(
        f"{'all':>12} ({len(a):2d}): iou {out['iou']:.3f} recall {out['recall']:.3f} "
        f"precision {out['precision']:.3f} lesion-in-bone {out['lesion_in_bone']:.3f}"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--set", action="append", default=[], help="stage.name=value override")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per film")
    a = ap.parse_args()
    score(a.folder, a.set, a.verbose)


if __name__ == "__main__":
    main()
