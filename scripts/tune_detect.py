"""Tune detection on generated data (``/work/data/tune``; never the validation set).

1. Runs anatomy + detection with ``min_confidence = 0`` on every image of the tuning
   folder, matches findings to the truth lesions and records each finding's
   confidence features with its label (true / false positive).
2. Fits the logistic confidence model (L2-regularised, Newton/IRLS) on those features.
3. Picks ``min_confidence`` as the lowest threshold whose false positives per image stay
   under ``--fp-target`` (default 0.2, leaving margin to the 0.3 goal).
4. Writes ``confidence_weights`` and ``min_confidence`` into ``models/params.toml``
   ``[detect]`` (``--write``) and prints the scores with the tuned values.

The matching rule (also used by ``scripts/evaluate.py``): a truth lesion is found when a
finding's bbox overlaps its bbox with IoU >= 0.1, or the finding's centroid lies in the
lesion's bbox grown by 2 mm. A finding matching no lesion is a false positive.

    PYTHONPATH=src /work/venv/bin/python scripts/tune_detect.py /work/data/tune [--write]
    PYTHONPATH=src /work/venv/bin/python scripts/tune_detect.py DIR --score-only
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from calcimg.anatomy import Region, map_anatomy
from calcimg.config import load_config
from calcimg.detect import CONFIDENCE_FEATURES, Detection, detect
from calcimg.ingest import read_radiograph

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "models" / "params.toml"
FITTED = ("log_n_particles", "hug_fraction", "denser_than_cortex")
"""Confidence features whose weights are fitted (the CNR weight is fixed, others 0)."""


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two (r0, c0, r1, c1) boxes, max exclusive."""
    r0, c0 = max(a[0], b[0]), max(a[1], b[1])
    r1, c1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, r1 - r0) * max(0, c1 - c0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def centroid(det: Detection) -> tuple[float, float]:
    ys, xs = np.nonzero(det.mask)
    return (det.bbox[0] + float(ys.mean()), det.bbox[1] + float(xs.mean()))


def matches(det: Detection, lesion: dict[str, Any], spacing_mm: float) -> bool:
    """The evaluation's matching rule."""
    lb = tuple(int(v) for v in lesion["bbox"])
    if iou(det.bbox, lb) >= 0.1:  # type: ignore[arg-type]
        return True
    g = 2.0 / spacing_mm
    r, c = centroid(det)
    return lb[0] - g <= r < lb[2] + g and lb[1] - g <= c < lb[3] + g


def run_folder(
    folder: Path, overrides: list[str], limit: int | None = None
) -> list[dict[str, Any]]:
    """Per image: truth, findings (with features) and anatomy scores."""
    config = load_config(overrides=overrides)
    out = []
    files = sorted(folder.glob("*.truth.json"))[:limit]
    for tf in files:
        truth = json.loads(tf.read_text())
        dcm = folder / truth["image"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rg = read_radiograph(dcm, params=config.ingest)
        t0 = time.perf_counter()
        amap = map_anatomy(rg, params=config.anatomy)
        dets = detect(rg, amap, params=config.detect)
        dt = time.perf_counter() - t0
        anat = {}
        apng = folder / truth["image"].replace(".dcm", ".anatomy.png")
        if apng.is_file():
            ref = cv2.imread(str(apng), cv2.IMREAD_UNCHANGED)
            if ref is not None and ref.shape == amap.labels.shape:
                for name, reg in (("bone", Region.BONE), ("soft", Region.SOFT_TISSUE)):
                    a = amap.labels == reg
                    b = ref == reg
                    u = (a | b).sum()
                    anat[name] = float((a & b).sum() / u) if u else 1.0
        out.append(
            {
                "truth": truth,
                "spacing": float(rg.mean_spacing_mm),
                "dets": dets.items,
                "anat": anat,
                "seconds": dt,
                "confounders": [c.kind for c in amap.confounders],
            }
        )
    return out


def score(results: list[dict[str, Any]], min_conf: float, verbose: bool = False) -> dict[str, Any]:
    """Lesion sensitivity (overall, per pattern), FP per image, image flag sens/spec."""
    found_by_pattern: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    n_fp = 0
    flag_tp = flag_fn = flag_tn = flag_fp = 0
    for res in results:
        truth = res["truth"]
        dets = [d for d in res["dets"] if d.confidence >= min_conf]
        lesions = truth["lesions"]
        hit = [False] * len(lesions)
        for d in dets:
            m = [matches(d, les, res["spacing"]) for les in lesions]
            if any(m):
                for k, v in enumerate(m):
                    hit[k] |= v
            else:
                n_fp += 1
                if verbose:
                    print(
                        f"  FP {truth['image']} {d.bbox} conf={d.confidence:.2f} {dict(d.features)}"
                    )
        for les, h in zip(lesions, hit, strict=True):
            fb = found_by_pattern[les["pattern"]]
            fb[0] += int(h)
            fb[1] += 1
            if verbose and not h:
                print(f"  FN {truth['image']} {les['pattern']}/{les['subtype']} {les['bbox']}")
        flagged = len(dets) > 0
        if truth.get("flag", bool(lesions)):
            flag_tp += int(flagged)
            flag_fn += int(not flagged)
        else:
            flag_fp += int(flagged)
            flag_tn += int(not flagged)
    n_found = sum(v[0] for v in found_by_pattern.values())
    n_les = sum(v[1] for v in found_by_pattern.values())
    return {
        "sensitivity": n_found / n_les if n_les else float("nan"),
        "per_pattern": {k: v[0] / v[1] for k, v in sorted(found_by_pattern.items())},
        "per_pattern_n": {k: v[1] for k, v in sorted(found_by_pattern.items())},
        "fp_per_image": n_fp / max(len(results), 1),
        "flag_sensitivity": flag_tp / max(flag_tp + flag_fn, 1),
        "flag_specificity": flag_tn / max(flag_tn + flag_fp, 1),
        "n_images": len(results),
        "n_lesions": n_les,
    }


def feature_table(results: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Finding features (rows), labels (1 = matches a lesion) and image index."""
    xs, ys, img = [], [], []
    for k, res in enumerate(results):
        for d in res["dets"]:
            f = d.features
            xs.append([float(f["conf_" + n]) for n in CONFIDENCE_FEATURES])
            ys.append(int(any(matches(d, les, res["spacing"]) for les in res["truth"]["lesions"])))
            img.append(k)
    return np.array(xs, dtype=np.float64).reshape(-1, len(CONFIDENCE_FEATURES)), np.array(ys), img


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50, cnr_weight: float = 2.0
) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method; returns [b0, w...].

    The weight of ``log_cnr_max`` is held at ``cnr_weight``: confidence must grow with
    contrast-to-noise whatever the tuning set's false positives look like (a small
    set's densest false positives, metal the anatomy missed, would otherwise teach the
    model to distrust obvious calcifications).
    """
    j = CONFIDENCE_FEATURES.index("log_cnr_max")
    offset = cnr_weight * x[:, j]
    # only features whose sign is known from the domain are fitted (more particles, more
    # confidence; hugging bone or denser than cortex, less); size and elongation are
    # held at 0, since lines and large masses are patterns of their own whatever share
    # of a small tuning set's false positives are bone edges or soft-tissue folds
    free = [CONFIDENCE_FEATURES.index(n) for n in FITTED]
    x = x[:, free]
    xa = np.hstack([np.ones((x.shape[0], 1)), x])
    w = np.zeros(xa.shape[1])
    w[0] = -float(np.mean(offset))
    reg = np.full(xa.shape[1], l2)
    reg[0] = 1e-6
    for _ in range(iters):
        z = np.clip(xa @ w + offset, -30, 30)
        p = 1.0 / (1.0 + np.exp(-z))
        g = xa.T @ (p - y) + reg * w
        hess = (xa * (p * (1 - p))[:, None]).T @ xa + np.diag(reg)
        step = np.linalg.solve(hess, g)
        norm = float(np.abs(step).max())
        if norm > 2.0:  # damped Newton: saturated starts must not overshoot
            step *= 2.0 / norm
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    full = np.zeros(len(CONFIDENCE_FEATURES) + 1)
    full[0] = w[0]
    full[j + 1] = cnr_weight
    for col, idx in enumerate(free):
        full[idx + 1] = w[col + 1]
    return full


def rescore(results: list[dict[str, Any]], weights: np.ndarray) -> None:
    """Recompute every finding's confidence with new weights (in place)."""
    import dataclasses

    for res in results:
        new = []
        for d in res["dets"]:
            x = np.array([1.0] + [float(d.features["conf_" + n]) for n in CONFIDENCE_FEATURES])
            conf = float(1.0 / (1.0 + np.exp(-np.clip(x @ weights, -50, 50))))
            new.append(dataclasses.replace(d, confidence=conf))
        res["dets"] = new


def write_params(weights: np.ndarray, min_conf: float) -> None:
    """Replace confidence_weights and min_confidence in models/params.toml [detect]."""
    text = PARAMS.read_text() if PARAMS.is_file() else ""
    wtxt = "[" + ", ".join(f"{v:.4f}" for v in weights) + "]"
    lines = {"confidence_weights": wtxt, "min_confidence": f"{min_conf:.3f}"}
    if "[detect]" not in text:
        text = text.rstrip() + "\n\n[detect]\n"
    head, _, rest = text.partition("[detect]\n")
    m = re.search(r"^\[", rest, flags=re.M)
    body, tail = (rest[: m.start()], rest[m.start() :]) if m else (rest, "")
    for key, val in lines.items():
        pat = re.compile(rf"^{key}\s*=.*$", flags=re.M)
        if pat.search(body):
            body = pat.sub(f"{key} = {val}", body)
        else:
            body = body.rstrip("\n") + f"\n{key} = {val}\n"
    PARAMS.write_text(head + "[detect]\n" + body + ("\n" + tail if tail else ""))


def print_scores(s: dict[str, Any], label: str) -> None:
    pp = ", ".join(f"{k} {v:.2f} (n={s['per_pattern_n'][k]})" for k, v in s["per_pattern"].items())
    print(
        f"{label}: {s['n_images']} images, {s['n_lesions']} lesions; sensitivity "
        f"{s['sensitivity']:.3f} [{pp}]; FP/image {s['fp_per_image']:.2f}; flag sensitivity "
        f"{s['flag_sensitivity']:.3f}, specificity {s['flag_specificity']:.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--set", action="append", default=[], help="stage.name=value override")
    ap.add_argument("--fp-target", type=float, default=0.25)
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--write", action="store_true", help="write the tuned values to params.toml")
    ap.add_argument("--score-only", action="store_true", help="score the current params only")
    ap.add_argument("--verbose", action="store_true", help="list false positives and misses")
    args = ap.parse_args(argv)
    if "val" in args.folder.name and not args.score_only:
        print("refusing to tune on a validation folder; use --score-only", file=sys.stderr)
        return 2
    logging.disable(logging.WARNING)
    current = load_config(overrides=args.set).detect
    if args.score_only:
        results = run_folder(args.folder, args.set, args.limit)
        print_scores(score(results, current.min_confidence, args.verbose), "current params")
        secs = [r["seconds"] for r in results]
        print(f"analysis time per image: median {np.median(secs):.2f} s, max {max(secs):.2f} s")
        bone = [r["anat"]["bone"] for r in results if "bone" in r["anat"]]
        soft = [r["anat"]["soft"] for r in results if "soft" in r["anat"]]
        if bone:
            print(
                f"anatomy IoU vs truth: bone median {np.median(bone):.3f}, "
                f"soft tissue {np.median(soft):.3f}"
            )
        return 0
    results = run_folder(args.folder, [*args.set, "detect.min_confidence=0.0"], args.limit)
    x, y, _ = feature_table(results)
    print(f"{len(y)} candidate findings, {int(y.sum())} true")
    w = fit_logistic(x, y, l2=args.l2)
    print(
        "weights:",
        ", ".join(
            f"{n}={v:.3f}" for n, v in zip(("intercept", *CONFIDENCE_FEATURES), w, strict=True)
        ),
    )
    rescore(results, w)
    print("FROC on the tuning set (min_confidence: sensitivity, FP/image):")
    for thr in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        s = score(results, thr)
        print(f"  {thr:.2f}: {s['sensitivity']:.3f}, {s['fp_per_image']:.2f}")
    best = 0.5
    for thr in np.linspace(0.05, 0.95, 91):
        s = score(results, float(thr))
        if s["fp_per_image"] <= args.fp_target:
            best = float(thr)
            break
    s = score(results, best, args.verbose)
    print_scores(s, f"tuned (min_confidence {best:.2f})")
    if args.write:
        write_params(w, best)
        print(f"written to {PARAMS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
