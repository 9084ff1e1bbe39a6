"""Fit the pattern model of ``calcimg.describe`` on a generated tuning set.

The model is a multinomial logistic regression over the named features of
``calcimg.describe.FEATURES`` (computed from the measured descriptors), class-balanced,
with an L2 penalty that pulls the weights towards the hand-set prior of
``calcimg.describe`` (the DOMAIN.md pattern table as weights): where the tuning set is
silent (e.g. septa, which only tumoral-calcinosis masses show) the prior stays.
Training rows are the truth lesions of every image in the folder,
measured on the masks as drawn and on the perturbed masks of ``describe_data.PERTURBATIONS``
(dilated, eroded, small particles dropped) so that the weights tolerate a detector's
masks. Features are standardised for fitting and the weights folded back to raw features,
so ``models/params.toml`` holds ``score = softmax(W @ f)`` on the documented features.

Writes the ``[describe]`` section of ``models/params.toml`` (between marker comments; other
sections untouched) with the seeds of the training images recorded in its header.

    PYTHONPATH=src /work/venv/bin/python scripts/train_describe.py /work/data/tune
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from calcimg.config import load_config
from calcimg.describe import FEATURES, PATTERNS, DescribeParams, describe, pattern_features
from describe_data import PERTURBATIONS, detected_detections, iter_cases, truth_detections

ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = ROOT / "models" / "params.toml"
BEGIN = "# >>> [describe] written by scripts/train_describe.py"
END = "# <<< [describe]"


def collect(
    folders: list[Path], params: DescribeParams, detected: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Feature rows, pattern indices, group per row, and the images' seeds.

    A row's group is its image's seed: an image and its vendor copies
    (``scripts/vendor_variants.py``) share one, and the cross-validation leaves them out
    together. Images without a seed are groups of their own (negative numbers)."""
    xs, ys, groups, seeds = [], [], [], []
    for k, case in enumerate(c for folder in folders for c in iter_cases(folder)):
        seed = case.truth.get("seed")
        seeds.append(int(seed) if seed is not None else -1)
        group = int(seed) if seed is not None else -1 - k
        variants = [(case.anatomy, *truth_detections(case, pert)) for pert in PERTURBATIONS]
        if detected:
            variants.append(detected_detections(case))
        for amap, dets, lesions in variants:
            out = describe(case.radiograph, amap, dets, params=params)
            for les, item in zip(lesions, out.items, strict=True):
                f = pattern_features(item.descriptors, item.location)
                xs.append([f[k] for k in FEATURES])
                ys.append(PATTERNS.index(les["pattern"]))
                groups.append(group)
    return np.array(xs, float), np.array(ys, int), np.array(groups), sorted(seeds)


def fit(x: np.ndarray, y: np.ndarray, l2: float, prior: np.ndarray) -> np.ndarray:
    """Raw-feature weights (n_patterns, n_features) of a multinomial logistic model.

    Fitted on standardised features with the penalty ``l2/2 * ||W - W_prior||^2`` (bias
    not penalised), ``prior`` given in raw-feature form like the result.
    """
    n, k = x.shape
    mu = x.mean(0)
    sd = x.std(0)
    mu[0], sd[0] = 0.0, 1.0  # the bias column stays 1
    sd[sd < 1e-9] = 1.0
    z = (x - mu) / sd
    n_cls = len(PATTERNS)
    counts = np.bincount(y, minlength=n_cls).astype(float)
    cw = np.where(counts > 0, n / (n_cls * np.maximum(counts, 1)), 0.0)[y]
    onehot = np.eye(n_cls)[y]
    pen = np.ones(k)
    pen[0] = 0.0  # the bias is not penalised
    w0 = prior * sd  # the prior in standardised form (its bias is not used)

    def loss(wflat: np.ndarray) -> tuple[float, np.ndarray]:
        w = wflat.reshape(n_cls, k)
        logits = z @ w.T
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        ll = -(cw * np.log(np.maximum((p * onehot).sum(1), 1e-12))).sum() / n
        grad = ((p - onehot) * cw[:, None]).T @ z / n
        ll += 0.5 * l2 * float(((w - w0) ** 2 * pen).sum())
        grad += l2 * (w - w0) * pen
        return float(ll), grad.ravel()

    start = w0.copy()
    start[:, 0] = prior[:, 0] + (prior * mu)[:, 1:].sum(1)
    res = minimize(loss, start.ravel(), jac=True, method="L-BFGS-B")
    w = res.x.reshape(n_cls, k)
    raw = w / sd
    raw[:, 0] = w[:, 0] - (w * mu / sd)[:, 1:].sum(1)
    return raw


def seed_ranges(seeds: list[int]) -> str:
    """``[1000, 1001, 1002, 5000]`` -> ``"1000-1002, 5000"``."""
    out: list[str] = []
    for s in sorted(seeds):
        if out and s == int(out[-1].split("-")[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{s}"
        else:
            out.append(str(s))
    return ", ".join(out)


def section_text(
    params: DescribeParams,
    weights: np.ndarray,
    folders: list[Path],
    seeds: list[int],
    l2: float,
    n_rows: int,
    variants: list[str],
) -> str:
    defaults = DescribeParams()
    lines = [
        BEGIN,
        f"# Pattern model fitted on {', '.join(str(f) for f in folders)}",
        f"# (seeds {seed_ranges(sorted(set(seeds)))}, {len(seeds)} images,",
        f"# {n_rows} rows = lesions x mask variants {', '.join(variants)}), L2 = {l2}.",
        "# score_p = softmax_p(sum_k w_p[k] * feature_k); features in calcimg.describe.FEATURES",
        "[describe]",
    ]
    for f in dataclasses.fields(params):
        if f.name.startswith("w_") or f.name == "features":
            continue
        v = getattr(params, f.name)
        if v != getattr(defaults, f.name):
            lines.append(f"{f.name} = {v!r}")
    lines.append("features = [" + ", ".join(f'"{k}"' for k in FEATURES) + "]")
    for i, p in enumerate(PATTERNS):
        vals = ", ".join(f"{x:.3f}" for x in weights[i])
        lines.append(f"w_{p} = [{vals}]")
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    old = PARAMS_FILE.read_text() if PARAMS_FILE.is_file() else ""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    new = pattern.sub(text, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text
    PARAMS_FILE.write_text(new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, nargs="+", help="truth folders (fitted together)")
    ap.add_argument("--l2", type=float, default=0.3)
    ap.add_argument(
        "--detected",
        action="store_true",
        help="also train on the detector's own candidates that find a truth lesion, "
        "described with calcimg's anatomy map (what describe sees in the pipeline)",
    )
    ap.add_argument("--dry-run", action="store_true", help="print, do not write params.toml")
    ap.add_argument("--cache", type=Path, help="reuse / save the measured features (.npz)")
    a = ap.parse_args(argv)
    params = load_config().describe
    defaults = DescribeParams()
    prior = np.array([defaults.weights(p) for p in PATTERNS])
    if a.cache is not None and a.cache.is_file():
        z = np.load(a.cache)
        x, y, groups, seeds = z["x"], z["y"], z["groups"], z["seeds"].tolist()
    else:
        x, y, groups, seeds = collect(a.folder, params, a.detected)
        if a.cache is not None:
            np.savez(a.cache, x=x, y=y, groups=groups, seeds=np.array(seeds))
    print(f"{len(y)} rows, class counts {np.bincount(y, minlength=len(PATTERNS)).tolist()}")
    print(f"prior alone: accuracy {float(((x @ prior.T).argmax(1) == y).mean()):.3f}")
    # leave-one-seed-out cross-validation: what the fit is worth on unseen images
    cv_pred = np.empty_like(y)
    for g in np.unique(groups):
        test = groups == g
        w_g = fit(x[~test], y[~test], a.l2, prior)
        cv_pred[test] = (x[test] @ w_g.T).argmax(1)
    print(f"leave-one-seed-out accuracy {float((cv_pred == y).mean()):.3f}; per pattern:")
    for i, p in enumerate(PATTERNS):
        sel = y == i
        if sel.any():
            print(f"  {p}: {float((cv_pred[sel] == i).mean()):.3f} (n={int(sel.sum())})")
    w = fit(x, y, a.l2, prior)
    acc = float(((x @ w.T).argmax(1) == y).mean())
    print(f"training accuracy {acc:.3f}")
    variants = [*PERTURBATIONS, "detected"] if a.detected else list(PERTURBATIONS)
    text = section_text(params, w, a.folder, seeds, a.l2, len(y), variants)
    print(text)
    if not a.dry_run:
        write_section(text)
        print(f"wrote {PARAMS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
