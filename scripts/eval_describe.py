"""Pattern accuracy of ``calcimg.describe`` on a generated set, driven by the truth masks.

Every truth lesion becomes one detection (its connected components are the particles), the
anatomy map comes from ``NAME.anatomy.png``, and the predicted pattern is compared with the
truth's. Prints accuracy, per-pattern recall and the confusion matrix (rows = truth), for
the masks as drawn and (``--perturb``) dilated / eroded by one pixel / with particles below
0.3 mm dropped, which imitates a detector's masks.

    PYTHONPATH=src /work/venv/bin/python scripts/eval_describe.py /work/data/val --perturb
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path

from calcimg.config import load_config
from calcimg.describe import PATTERNS, describe
from describe_data import PERTURBATIONS, iter_cases, truth_detections

SHORT = {
    "amorphous": "amorph",
    "finely_speckled": "speckl",
    "globular_periarticular": "globul",
    "vascular": "vascul",
    "chondral_line": "chondr",
}


def evaluate(folder: Path, perturbations: list[str], rows_out: Path | None) -> int:
    params = load_config().describe
    confusion = {p: Counter[str]() for p in perturbations}
    rows = []
    for case in iter_cases(folder):
        for pert in perturbations:
            dets, lesions = truth_detections(case, pert)
            out = describe(case.radiograph, case.anatomy, dets, params=params)
            for les, item in zip(lesions, out.items, strict=True):
                confusion[pert][f"{les['pattern']}|{item.pattern}"] += 1
                if pert == "none" or item.pattern != les["pattern"]:
                    rows.append(
                        {
                            "image": case.name,
                            "perturbation": pert,
                            "lesion": les["id"],
                            "subtype": les.get("subtype"),
                            "truth": les["pattern"],
                            "pred": str(item.pattern),
                            "score": item.pattern_scores[item.pattern],
                            "drivers": "; ".join(item.drivers),
                            "intra_articular": item.location.intra_articular,
                            "distance_to_joint_mm": item.location.distance_to_joint_mm,
                            "distance_to_bone_mm": item.location.distance_to_bone_mm,
                            **item.descriptors,
                        }
                    )
    worst = 1.0
    for pert in perturbations:
        conf = confusion[pert]
        total = sum(conf.values())
        correct = sum(v for k, v in conf.items() if k.split("|")[0] == k.split("|")[1])
        print(f"\n== {folder} masks: {pert}  n={total}  accuracy={correct / max(total, 1):.3f}")
        header = "truth \\ pred".ljust(24) + "".join(SHORT[p].rjust(8) for p in PATTERNS)
        print(header + "  recall")
        for t in PATTERNS:
            counts = [conf[f"{t}|{p}"] for p in PATTERNS]
            n = sum(counts)
            rec = counts[PATTERNS.index(t)] / n if n else float("nan")
            if n:
                worst = min(worst, rec)
            print(str(t).ljust(24) + "".join(str(c).rjust(8) for c in counts) + f"  {rec:.3f}")
    if rows_out is not None:
        keys = sorted(
            {k for r in rows for k in r},
            key=lambda k: list(rows[0]).index(k) if k in rows[0] else 999,
        )
        with rows_out.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        print(f"\nper-lesion rows: {rows_out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--perturb", action="store_true", help="also dilated/eroded/dropped masks")
    ap.add_argument("--rows", type=Path, help="write per-lesion rows (CSV)")
    a = ap.parse_args(argv)
    perts = list(PERTURBATIONS) if a.perturb else ["none"]
    return evaluate(a.folder, perts, a.rows)


if __name__ == "__main__":
    sys.exit(main())
