"""Score calcimg's anatomy map against the simulated truth (``NAME.anatomy.png``).

For every ``NAME.dcm`` of a truth folder: bone IoU, recall and precision against the
truth's bone, the fraction of truth lesion pixels the map calls bone (the detector
never looks there) and the share of the map's soft tissue that is the truth's background
(air taken for tissue: session 11's equalisation halo). One line per film with ``-v``,
then the means overall and per anatomy.

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

METRICS = (
    ("iou", "iou"),
    ("recall", "recall"),
    ("precision", "precision"),
    ("lesion_in_bone", "lesion-in-bone"),
    ("joints_found", "joints"),
    ("joint_on_bone", "joint-on-bone"),
    ("foreign_recall", "foreign"),
    ("air_as_soft", "air-as-soft"),
)
"""The means :func:`score` returns (key, label printed), in the order of its rows."""


def _summary(name: str, a: np.ndarray) -> str:
    """One line of means over the films ``a`` (one row per film, columns as METRICS)."""
    pairs = zip(METRICS, a.mean(axis=0), strict=True)
    means = " ".join(f"{label} {v:.3f}" for (_k, label), v in pairs)
    return f"{name:>12} ({len(a):2d}): {means}"


def score(folder: Path, overrides: list[str], verbose: bool = False) -> dict[str, float]:
    """Mean bone IoU, recall, precision, lesion-in-bone fraction, joints found, foreign
    recall and air-as-soft over the folder.

    A truth joint is found when calcimg's joint-space map has a pixel inside its bbox;
    joint-on-bone is the share of calcimg's joint space that is truth bone;
    foreign recall is the share of the truth's foreign pixels (metal, markers, text)
    mapped as foreign (films without any count as 1); air-as-soft is the share of
    calcimg's soft tissue that is the truth's background.
    """
    cfg = load_config(overrides=overrides)
    rows: list[tuple[str, float, float, float, float, float, float, float, float]] = []
    for path in sorted(folder.glob("*.dcm")):
        truth = json.loads(path.with_suffix(".truth.json").read_text())
        codes = cv2.imread(str(path.with_suffix(".anatomy.png")), cv2.IMREAD_UNCHANGED)
        lesions = cv2.imread(str(path.with_suffix(".mask.png")), cv2.IMREAD_UNCHANGED) > 0
        amap = map_anatomy(read_radiograph(str(path)), params=cfg.anatomy)
        labels = amap.labels  # resampled to the film on each access: once per film
        ours = labels == Region.BONE
        true = codes == Region.BONE
        inter = float((ours & true).sum())
        iou = inter / max(float((ours | true).sum()), 1.0)
        rec = inter / max(float(true.sum()), 1.0)
        prec = inter / max(float(ours.sum()), 1.0)
        in_bone = float((ours & lesions).sum()) / max(float(lesions.sum()), 1.0)
        ours_joint = labels == Region.JOINT_SPACE
        hits = [
            bool(ours_joint[r0:r1, c0:c1].any())
            for r0, c0, r1, c1 in (j["bbox"] for j in truth.get("joints", []))
        ]
        joints = float(np.mean(hits)) if hits else 1.0
        # joint space laid over truth bone is bone the detector will search
        joint_in_bone = float((ours_joint & true).sum()) / max(float(ours_joint.sum()), 1.0)
        true_foreign = codes == Region.FOREIGN
        foreign = (
            float((true_foreign & (labels == Region.FOREIGN)).sum()) / float(true_foreign.sum())
            if true_foreign.any()
            else 1.0
        )
        ours_soft = labels == Region.SOFT_TISSUE
        air_soft = float((ours_soft & (codes == Region.BACKGROUND)).sum()) / max(
            float(ours_soft.sum()), 1.0
        )
        rows.append(
            (truth["anatomy"], iou, rec, prec, in_bone, joints, joint_in_bone, foreign, air_soft)
        )
        if verbose:
            print(
                f"{path.name} {truth['anatomy']:>12} iou {iou:.3f} recall {rec:.3f} "
                f"precision {prec:.3f} lesion-in-bone {in_bone:.3f} joints {joints:.2f} "
                f"joint-on-bone {joint_in_bone:.3f} foreign {foreign:.3f} "
                f"air-as-soft {air_soft:.3f}"
            )
    by: dict[str, list[tuple[float, ...]]] = collections.defaultdict(list)
    for r in rows:
        by[r[0]].append(r[1:])
    for name, vals in sorted(by.items()):
        print(_summary(name, np.array(vals)))
    a = np.array([r[1:] for r in rows])
    print(_summary("all", a))
    out = dict(zip((k for k, _ in METRICS), a.mean(axis=0).tolist(), strict=True))
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
