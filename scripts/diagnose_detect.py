"""Why is each truth lesion found or missed? One line per lesion of a truth folder.

For every lesion of every ``NAME.dcm`` (with ``NAME.truth.json`` and ``NAME.mask.png``)
it prints the pattern, size and peak, where the anatomy map put the lesion's pixels
(soft tissue / bone / joint / foreign / background), whether any candidate finds it and
the best such candidate's confidence and features; then a summary of the miss causes:

- ``bone``: over half the lesion's pixels were mapped as bone (the detector never looks);
- ``no-candidate``: the lesion is in soft tissue but no candidate touches it;
- ``merged``: no candidate finds it by the evaluation rule, but one covers some of its
  pixels: the lesion was grouped with something larger (often a bone the map missed);
- ``low-confidence``: a candidate finds it but scores below ``min_confidence``;
- ``found``.

    PYTHONPATH=src python scripts/diagnose_detect.py /work/data/tune [--set k=v] [--only amorphous]

Never run it on the validation set while changing the detector.
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
from calcimg.detect import candidates, confidence
from calcimg.evaluation import candidate_as_finding, finding_hits_lesion
from calcimg.ingest import read_radiograph

SHOWN = ("cnr_max", "area_mm2", "edge_fraction", "rel_contrast", "background_rel")


def _covers(bbox: tuple[int, int, int, int], particles: np.ndarray, lesion: np.ndarray) -> bool:
    """Whether a candidate's particles (bbox-sized, film resolution) touch the lesion."""
    r0, c0, r1, c1 = bbox
    return bool((particles > 0)[lesion[r0:r1, c0:c1]].any())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--set", action="append", default=[], help="stage.name=value override")
    ap.add_argument("--only", default=None, help="only lesions of this pattern")
    ap.add_argument("--limit", type=int, default=0, help="first N images only")
    a = ap.parse_args()
    cfg = load_config(overrides=a.set)
    causes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    paths = sorted(a.folder.glob("*.dcm"))
    if a.limit:
        paths = paths[: a.limit]
    n_fp = 0
    for path in paths:
        truth = json.loads(path.with_suffix(".truth.json").read_text())
        lesion_ids = cv2.imread(str(path.with_suffix(".mask.png")), cv2.IMREAD_UNCHANGED)
        rg = read_radiograph(str(path))
        amap = map_anatomy(rg, params=cfg.anatomy)
        found, _ = candidates(rg, amap, cfg.detect)
        scored = [
            (
                candidate_as_finding(bbox, particles),
                feats,
                confidence(cfg.detect, feats),
            )
            for bbox, particles, feats in found
        ]
        hit_any: set[int] = set()
        for les in truth["lesions"]:
            m = lesion_ids == les["id"]
            lab = amap.labels[m]
            frac = {r.name.lower(): float((lab == r).mean()) for r in Region} if m.any() else {}
            hits = []
            for k, (f, feats, conf) in enumerate(scored):
                if finding_hits_lesion(f, les, rg.pixel_spacing_mm):
                    hit_any.add(k)
                    hits.append((conf, feats))
            best = max(hits, key=lambda t: t[0]) if hits else None
            if best is not None and best[0] >= cfg.detect.min_confidence:
                cause = "found"
            elif frac.get("bone", 0.0) > 0.5:
                cause = "bone"
            elif best is None and any(_covers(b, pl, m) for b, pl, _f in found):
                cause = "merged"
            elif best is None:
                cause = "no-candidate"
            else:
                cause = "low-confidence"
            causes[les["pattern"]][cause] += 1
            if a.only and les["pattern"] != a.only:
                continue
            where = " ".join(f"{k[:4]}={v:.2f}" for k, v in frac.items() if v > 0.01)
            fb = ""
            if best is not None:
                fb = f" conf={best[0]:.2f} " + " ".join(f"{k}={best[1][k]:.2f}" for k in SHOWN)
            print(
                f"{path.name} {truth['anatomy']:>12} "
                f"{les['pattern'][:10]:>10}/{les['subtype']:<12} "
                f"{'subtle' if les['subtle'] else '      '} area={les['area_mm2']:7.1f} "
                f"peak={les['peak_rel_cortex']:.2f} {cause:<14} [{where}]{fb}"
            )
        n_fp += sum(
            1
            for k, (_f, _feats, conf) in enumerate(scored)
            if k not in hit_any and conf >= cfg.detect.min_confidence
        )
    print()
    tot: collections.Counter[str] = collections.Counter()
    for pat, c in sorted(causes.items()):
        tot.update(c)
        print(f"{pat:>24}: " + ", ".join(f"{k} {v}" for k, v in c.most_common()))
    print(f"{'all':>24}: " + ", ".join(f"{k} {v}" for k, v in tot.most_common()))
    print(f"false positives at min_confidence: {n_fp} on {len(paths)} images")


if __name__ == "__main__":
    main()
