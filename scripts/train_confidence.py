"""Fit the detector's confidence as gradient-boosted trees (``detect.confidence_model``).

For every ``NAME.dcm`` of the truth folders it runs anatomy and candidate detection as
calcimg does, measures every candidate's :data:`calcimg.detect.CANDIDATE_FEATURES` (the
named features and the surround descriptors of :mod:`calcimg.surround`) and labels it
true when it finds a truth lesion by the evaluation rule
(:func:`calcimg.evaluation.finding_hits_lesion`). Candidates on the real films without
calcification (``scripts/overlay_real.py``'s list) join as negatives of weight
``--real-weight``.

The operating point is chosen out of fold: five folds by seed (a film and its vendor
copies, which share the number ending their names, are always in the same fold), each
scored by trees fitted on the other four. ``min_confidence`` is the lowest threshold
(0.01 steps, ``tune_detect2.threshold_for``) at which the out-of-fold scores give at
most ``--fp-per-image`` false findings per film and an image specificity of at least
``--min-specificity`` on the folders' negative films.
The same threshold is then applied to scores out of fold **by anatomy** (each anatomy of
the truth files scored by trees fitted on the others): how the operating point holds on
an anatomy no fitted film shows. It is reported, and chooses nothing.
Each real film is also scored by trees fitted without it (films stored twice, such as
RG3 in two encodings, are left out together, by SOP Instance UID). Those scores bound
the threshold too (session 33): at most ``--real-per-image`` findings per real file on
average (default 1, issue 4's bound for real films without calcification), and the
findings at the threshold are reported. Scores of trees fitted with a film's own
candidates would decide nothing: they score them low whatever they are.

The final trees are fitted on every candidate and written, with the settings, folders,
seeds and these figures, to ``models/confidence_trees.json`` (the format of
:class:`calcimg.bonemodel.TreeEnsemble`, evaluated with numpy at run time). The shipped
model and its threshold came from (session 23; ``tune3*`` hold the foot, forearm and
chest films, see ``docs/detection.md``)::

    PYTHONPATH=src:scripts .venv/bin/python scripts/train_confidence.py /work/data/tune \\
        /work/data/tune2 /work/data/tune_mixed /work/data/tune2_mixed \\
        /work/data/tune_strong /work/data/tune2_strong /work/data/tune3 \\
        /work/data/tune3_mixed /work/data/tune3_strong --jobs 2

Needs scikit-learn (``pip install -e ".[train]"``); calcimg itself does not.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from calcimg.anatomy import map_anatomy
from calcimg.bonemodel import MODEL_FORMAT, TreeEnsemble
from calcimg.config import load_config
from calcimg.detect import CANDIDATE_FEATURES, candidates, first_pass
from calcimg.evaluation import candidate_as_finding, finding_hits_lesion
from calcimg.ingest import read_radiograph
from calcimg.params import models_dir
from train_bone import export
from tune_detect2 import threshold_for

OUT = models_dir() / "confidence_trees.json"

SETTINGS = {
    "max_iter": 300,
    "learning_rate": 0.05,
    "max_depth": 6,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
    "random_state": 0,
}
"""scikit-learn ``HistGradientBoostingClassifier`` settings. Set once in session 22 with
depth 4; session 23 compared depth 4 and 6 with 300 and 600 trees by the out-of-fold
(seed) recall on the nine tune folders and took depth 6 (539 lesions against 520 of 909;
600 trees gave the same)."""

FOLDS = 5


FilmRows = tuple[list[list[float]], list[list[int]], int, str]


def film_rows(path: Path, overrides: list[str]) -> FilmRows:
    """Feature rows, the truth lesions each candidate finds, the film's lesion count and
    its anatomy.

    A film without ``NAME.truth.json`` (a real film) has no lesions and anatomy ``""``.
    """
    cfg = load_config(overrides=overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # uncalibrated spacing of old real films
        rg = read_radiograph(str(path))
    # the first pass only: the second look is decided by the model this fit replaces
    found, _ = candidates(rg, map_anatomy(rg, params=cfg.anatomy), first_pass(cfg.detect))
    truth = path.with_suffix(".truth.json")
    doc = json.loads(truth.read_text()) if truth.is_file() else {}
    lesions = doc.get("lesions", [])
    rows, hits = [], []
    for bbox, particles, feats in found:
        f = candidate_as_finding(bbox, particles)
        rows.append([feats[n] for n in CANDIDATE_FEATURES])
        hits.append(
            [i for i, les in enumerate(lesions) if finding_hits_lesion(f, les, rg.pixel_spacing_mm)]
        )
    return rows, hits, len(lesions), doc.get("anatomy", "")


def _film_rows_args(args: tuple[Path, list[str]]) -> FilmRows:
    return film_rows(*args)


def gather(paths: list[Path], overrides: list[str], jobs: int) -> list[Any]:
    """:func:`film_rows` of every film, in order (``jobs`` processes)."""
    work = [(p, overrides) for p in paths]
    if jobs <= 1:
        return [film_rows(*w) for w in work]
    with ProcessPoolExecutor(jobs) as ex:
        return list(ex.map(_film_rows_args, work, chunksize=4))


def main(argv: list[str] | None = None) -> int:
    from sklearn import __version__ as sklearn_version
    from sklearn.ensemble import HistGradientBoostingClassifier

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--set", action="append", default=[], help="stage.name=value override")
    ap.add_argument("--fp-per-image", type=float, default=0.10)
    ap.add_argument("--min-specificity", type=float, default=0.95)
    ap.add_argument("--real-weight", type=float, default=3.0)
    ap.add_argument(
        "--real-per-image",
        type=float,
        default=1.0,
        help="most findings per real film (scored by trees fitted without it) on average",
    )
    ap.add_argument("--no-real", action="store_true", help="leave the real films out")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    paths = [p for f in args.folders for p in sorted(f.glob("*.dcm"))]
    if not paths:
        raise SystemExit(f"no NAME.dcm in {', '.join(map(str, args.folders))}")
    real: list[Path] = []
    if not args.no_real:
        from overlay_real import real_files

        real = real_files()
    per_film = gather(paths + real, args.set, args.jobs)
    x_rows, y_l, img_l, hits, negative, n_les = [], [], [], [], set(), 0
    for k, (rows, film_hits, n, _a) in enumerate(per_film[: len(paths)]):
        if n == 0:
            negative.add(k)
        x_rows += rows
        y_l += [1 if h else 0 for h in film_hits]
        img_l += [k] * len(rows)
        hits += [[n_les + i for i in h] for h in film_hits]
        n_les += n
    x = np.array(x_rows, dtype=np.float64).reshape(-1, len(CANDIDATE_FEATURES))
    y, img = np.array(y_l, dtype=np.int8), np.array(img_l, dtype=np.intp)
    n_img = len(paths)
    ceiling = {h for hs in hits for h in hs}
    print(
        f"{len(y)} candidates on {n_img} films, {int(y.sum())} true; "
        f"candidate lesion recall {len(ceiling)}/{n_les}"
    )
    # real films: rows and a group per distinct image (SOP Instance UID)
    uids = [_instance(p) for p in real]
    xr_rows, real_group = [], []
    for k, (rows, _h, _n, _a) in enumerate(per_film[len(paths) :]):
        xr_rows += rows
        real_group += [uids[k]] * len(rows)
    xr = np.array(xr_rows, dtype=np.float64).reshape(-1, len(CANDIDATE_FEATURES))
    groups = np.array(real_group)

    def fitted(xa: np.ndarray, ya: np.ndarray, xra: np.ndarray) -> Any:
        sw = np.concatenate([np.ones(len(xa)), np.full(len(xra), args.real_weight)])
        model = HistGradientBoostingClassifier(**SETTINGS)
        return model.fit(
            np.vstack([xa, xra]), np.concatenate([ya, np.zeros(len(xra))]), sample_weight=sw
        )

    # out of fold, by seed
    seeds = [m.group(1) if (m := re.search(r"(\d+)$", p.stem)) else p.stem for p in paths]
    uniq = sorted(set(seeds))
    fold_of = dict(zip(uniq, np.random.default_rng(0).permutation(len(uniq)) % FOLDS, strict=True))
    fold = np.array([fold_of[seeds[k]] for k in img])
    oof = np.zeros(len(y))
    for f in range(FOLDS):
        tr = fold != f
        oof[~tr] = fitted(x[tr], y[tr], xr).predict_proba(x[~tr])[:, 1]

    def specificity(t: float) -> float:
        flagged = set(img[oof >= t].tolist()) & negative
        return 1.0 - len(flagged) / max(len(negative), 1)

    # each real film scored by trees fitted without it (and without its other encodings)
    real_oof = np.zeros(len(xr))
    for g in sorted(set(real_group)):
        out = groups == g
        real_oof[out] = fitted(x, y, xr[~out]).predict_proba(xr[out])[:, 1]

    def real_ok(t: float) -> bool:
        return int((real_oof >= t).sum()) <= args.real_per_image * len(real)

    t = round(
        threshold_for(
            oof,
            y,
            n_img,
            args.fp_per_image,
            lambda t: specificity(t) >= args.min_specificity and real_ok(t),
        ),
        2,
    )
    n_found, _reached, fp_rate, spec = _figures(oof >= t, img, y, hits, negative, set(range(n_img)))
    print(
        f"out of fold ({FOLDS} folds by seed), threshold {t:.2f}: lesion recall "
        f"{n_found}/{n_les} = {n_found / max(n_les, 1):.3f}, FP/image {fp_rate:.3f}, "
        f"image specificity {spec:.3f} ({len(negative)} negative films)"
    )
    anatomies = [a for _r, _h, _n, a in per_film[: len(paths)]]
    by_anatomy = _by_anatomy(anatomies, img, y, hits, negative, t, x, lambda a, b: fitted(a, b, xr))
    real_report: dict[str, int] = {}
    for g in sorted(set(real_group)):
        names = ", ".join(sorted({p.name for p, u in zip(real, uids, strict=True) if u == g}))
        real_report[names] = int((real_oof[groups == g] >= t).sum())
    n_real_films = len(real)
    print(
        f"real films, each scored by trees fitted without it: {sum(real_report.values())} "
        f"findings on {n_real_films} files ({len(real_report)} distinct images with candidates): "
        + "; ".join(f"{k} {v}" for k, v in real_report.items())
    )
    model = fitted(x, y, xr)
    doc = {
        "format": MODEL_FORMAT,
        "features": list(CANDIDATE_FEATURES),
        "grid_mm": 0.0,
        **export(model),
        "training": {
            "script": "scripts/train_confidence.py",
            "folders": [str(f) for f in args.folders],
            "films": n_img,
            "candidates": int(len(y)),
            "real_candidates": int(len(xr)),
            "real_weight": args.real_weight,
            "real_per_image": args.real_per_image,
            "overrides": args.set,
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "settings": SETTINGS,
            "scikit_learn": sklearn_version,
            "min_confidence": t,
            "out_of_fold": {
                "lesion_recall": round(n_found / max(n_les, 1), 4),
                "lesions": [n_found, n_les],
                "fp_per_image": round(fp_rate, 4),
                "image_specificity": round(spec, 4),
            },
            "by_anatomy": by_anatomy,
            "real_findings_left_out": real_report,
        },
    }
    ours = TreeEnsemble.from_dict(doc, known=CANDIDATE_FEATURES).predict_proba(x)
    err = float(np.abs(ours - model.predict_proba(x)[:, 1]).max())
    if err > 1e-6:
        raise SystemExit(f"exported trees disagree with scikit-learn by {err:.2e}")
    args.out.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({len(doc['trees'])} trees; matches scikit-learn to {err:.1e})")
    print("[detect]")
    print(f'confidence_model = "{args.out.name}"')
    print(f"min_confidence = {t:.2f}")
    return 0


def _figures(
    kept: np.ndarray,
    img: np.ndarray,
    y: np.ndarray,
    hits: list[list[int]],
    negative: set[int],
    films: set[int],
) -> tuple[int, int, float, float]:
    """On the films ``films`` (indices), with candidates ``kept``: lesions found, lesions
    reached by any candidate, false findings per film, and image specificity."""
    on = np.isin(img, sorted(films))
    sel = kept & on
    found = {h for hs, k in zip(hits, sel, strict=True) if k for h in hs}
    reached = {h for hs, k in zip(hits, on, strict=True) if k for h in hs}
    negs = negative & films
    flagged = set(img[sel].tolist()) & negs
    return (
        len(found),
        len(reached),
        int((sel & (y == 0)).sum()) / max(len(films), 1),
        1.0 - len(flagged) / max(len(negs), 1),
    )


def _by_anatomy(
    anat: list[str],
    img: np.ndarray,
    y: np.ndarray,
    hits: list[list[int]],
    negative: set[int],
    t: float,
    x: np.ndarray,
    fit: Any,
) -> dict[str, Any]:
    """Scores out of fold by anatomy at threshold ``t``: overall and per anatomy.

    ``anat`` names each film's anatomy (from its truth file). Each anatomy is scored by
    trees fitted (``fit(x, y)``) on the candidates of the other anatomies; ``t`` is the
    threshold chosen by seed.
    """
    cand = np.array([anat[k] for k in img])
    score = np.zeros(len(y))
    for a in sorted(set(anat)):
        out = cand == a
        if out.any():
            score[out] = fit(x[~out], y[~out]).predict_proba(x[out])[:, 1]
    kept = score >= t

    def figures(films: set[int]) -> dict[str, Any]:
        found, reached, fp_rate, spec = _figures(kept, img, y, hits, negative, films)
        return {
            "films": len(films),
            "lesions_found": found,
            "lesions_with_candidate": reached,
            "fp_per_image": round(fp_rate, 4),
            "image_specificity": round(spec, 4),
        }

    out_doc = {"all": figures(set(range(len(anat))))}
    for a in sorted(set(anat)):
        out_doc[a] = figures({k for k, n in enumerate(anat) if n == a})
    line = "; ".join(f"{a} {v['fp_per_image']:.2f}" for a, v in out_doc.items() if a != "all")
    o = out_doc["all"]
    print(
        f"out of fold by anatomy at {t:.2f}: lesions found {o['lesions_found']} "
        f"(of {o['lesions_with_candidate']} with a candidate), FP/image {o['fp_per_image']:.3f}, "
        f"image specificity {o['image_specificity']:.3f}; FP/image per anatomy: {line}"
    )
    return out_doc


def _instance(path: Path) -> str:
    """The SOP Instance UID of a file (the same image stored twice shares it)."""
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid UIDs of old test films
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        return str(ds.get("SOPInstanceUID", path.name))


if __name__ == "__main__":
    sys.exit(main())
