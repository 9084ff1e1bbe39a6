"""Measures of the edge-based bone map's watershed regions against the simulated truth.

For every ``NAME.dcm`` of a truth folder, runs the anatomy grid steps up to the
edge watershed (``bone_method = "edges"``), and prints one row per region outside the
threshold bone (its addition): the measures of ``calcimg.anatomy._region_signs``, the
fraction of its pixels that are truth bone and truth lesion, and whether the shipped
test keeps it. With ``--summary``, the quantiles of each measure for regions that are
mostly bone, mostly lesion and the rest (soft tissue), to see which test separates them.

    PYTHONPATH=src python scripts/bone_regions.py /work/data/tune [--set anatomy.k=v]
        [--csv out.csv] [--summary]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from calcimg import anatomy as an
from calcimg.config import load_config
from calcimg.ingest import read_radiograph


def grid_state(rg: object, p: an.AnatomyParams) -> tuple[np.ndarray, ...]:
    """(img, body, threshold bone, spacing) on the anatomy grid, as ``map_anatomy``."""
    captured: dict[str, object] = {}
    orig = an._edge_bone

    def spy(img, body, bone, sp, params):  # type: ignore[no-untyped-def]
        captured.update(img=img, body=body, bone=bone, sp=sp)
        return orig(img, body, bone, sp, params)

    an._edge_bone = spy
    try:
        an.map_anatomy(rg, params=p)  # type: ignore[arg-type]
    finally:
        an._edge_bone = orig
    return captured["img"], captured["body"], captured["bone"], captured["sp"]  # type: ignore[return-value]


def rows(folder: Path, overrides: list[str]) -> list[dict[str, object]]:
    """One dict per added region of every film."""
    cfg = load_config(overrides=[*overrides, "anatomy.bone_method=edges"])
    p = cfg.anatomy
    out: list[dict[str, object]] = []
    for path in sorted(folder.glob("*.dcm")):
        truth = json.loads(path.with_suffix(".truth.json").read_text())
        rg = read_radiograph(str(path))
        img, body, bone, sp = grid_state(rg, p)
        h, w = img.shape
        codes = cv2.imread(str(path.with_suffix(".anatomy.png")), cv2.IMREAD_UNCHANGED)
        les = cv2.imread(str(path.with_suffix(".mask.png")), cv2.IMREAD_UNCHANGED) > 0
        t_bone = cv2.resize((codes == an.Region.BONE).astype(np.float32), (w, h), cv2.INTER_AREA)
        t_les = cv2.resize(les.astype(np.float32), (w, h), cv2.INTER_AREA)
        lab, s = an._edge_parts(img, body, bone, sp, p)
        keep = an._bone_regions(s, p)
        added = (lab > 1) & ~bone & body
        la = np.where(added, lab, 0).ravel()
        n = len(keep)
        cnt = np.bincount(la, minlength=n)
        fb = np.bincount(la, t_bone.ravel(), n) / np.maximum(cnt, 1)
        fl = np.bincount(la, t_les.ravel(), n) / np.maximum(cnt, 1)
        for i in range(2, n):
            if cnt[i] == 0:
                continue
            row: dict[str, object] = {
                "film": path.stem,
                "anatomy": truth["anatomy"],
                "label": i,
                "truth_bone": round(float(fb[i]), 3),
                "truth_lesion": round(float(fl[i]), 3),
                "lesion_px": int(round(float(fl[i] * cnt[i]))),
                "bone_px": int(round(float(fb[i] * cnt[i]))),
                "kept": bool(keep[i]),
            }
            row.update({k: round(float(v[i]), 3) for k, v in s.items()})
            out.append(row)
    return out


def summary(rs: list[dict[str, object]]) -> None:
    """Quantiles of each measure per truth class (regions >= 4 grid pixels)."""
    classes = {
        "bone": lambda r: r["truth_bone"] >= 0.5,
        "lesion": lambda r: r["truth_lesion"] >= 0.3,
        "soft": lambda r: r["truth_bone"] < 0.2 and r["truth_lesion"] < 0.05,
    }
    keys = ["area_mm2", "edge_frac", "halfwidth_mm", "aspect", "rim", "texture", "far_mm"]
    for name, f in classes.items():
        sel = [r for r in rs if f(r) and float(r["area_mm2"]) >= 1.0]  # type: ignore[arg-type]
        print(f"{name}: {len(sel)} regions, bone px {sum(int(r['bone_px']) for r in sel)}")
        for k in keys:
            v = np.array([float(r[k]) for r in sel])  # type: ignore[arg-type]
            v = v[np.isfinite(v)]
            if v.size:
                q = np.percentile(v, [5, 25, 50, 75, 95])
                print(f"  {k:>13}: " + " ".join(f"{x:8.2f}" for x in q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--set", action="append", default=[], help="stage.name=value override")
    ap.add_argument("--csv", type=Path, help="write the rows here")
    ap.add_argument("--summary", action="store_true")
    a = ap.parse_args()
    rs = rows(a.folder, a.set)
    if a.csv:
        with a.csv.open("w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=list(rs[0]))
            wr.writeheader()
            wr.writerows(rs)
    if a.summary:
        summary(rs)
    if not a.csv and not a.summary:
        wr = csv.DictWriter(sys.stdout, fieldnames=list(rs[0]))
        wr.writeheader()
        wr.writerows(rs)


if __name__ == "__main__":
    main()
