"""The learned bone probability: tree evaluation, the model file, and bone against truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from calcimg.anatomy import Region, map_anatomy
from calcimg.bonemodel import (
    MEAN_PIXELS,
    MODEL_FORMAT,
    PIXEL_FEATURES,
    TreeEnsemble,
    bone_field,
    load_bone_model,
    pixel_features,
    probability_at,
)
from calcimg.config import load_config
from calcimg.errors import ConfigError
from calcimg.ingest import read_radiograph
from scripts_mod import load_script

ROOT = Path(__file__).resolve().parents[1]
N = len(PIXEL_FEATURES)


def two_trees() -> dict[str, Any]:
    """Tree 0 splits feature 2 at 1.0 (left leaf -1, right leaf +2); tree 1 is one leaf."""
    return {
        "format": MODEL_FORMAT,
        "features": list(PIXEL_FEATURES),
        "grid_mm": 0.5,
        "baseline": 0.5,
        "trees": [
            {
                "feature": [2, 0, 0],
                "threshold": [1.0, 0.0, 0.0],
                "left": [1, -1, -1],
                "right": [2, -1, -1],
                "value": [0.0, -1.0, 2.0],
            },
            {"feature": [0], "threshold": [0.0], "left": [-1], "right": [-1], "value": [0.25]},
        ],
    }


def test_trees_sum_their_leaves_on_a_logit_scale() -> None:
    model = TreeEnsemble.from_dict(two_trees())
    x = np.zeros((3, N))
    x[:, 2] = [0.5, 1.0, 1.5]  # at the threshold a sample goes left, as scikit-learn's
    z = np.array([0.5 - 1.0 + 0.25, 0.5 - 1.0 + 0.25, 0.5 + 2.0 + 0.25])
    np.testing.assert_allclose(model.predict_proba(x), 1 / (1 + np.exp(-z)))
    assert model.depth == 1


def one_node(**lists: list[float]) -> dict[str, list[float]]:
    """A one-node tree whose node is its own child (a cycle), with lists replaced."""
    return {"feature": [0], "threshold": [0.0], "left": [0], "right": [0], **lists}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": "xgboost"}, r"format 'xgboost'; expected 'calcimg-trees/1'"),
        ({"features": ["a", "b"]}, r"features \['a', 'b'\]; expected \['map_bone'"),
        ({"trees": []}, "no trees"),
        ({"trees": [{"feature": [0]}]}, r"tree 0: 'threshold'; expected lists"),
        ({"trees": [one_node(value=[])]}, "unequal or zero length"),
        ({"trees": [one_node(value=[1.0])]}, "children out of order"),
    ],
    ids=["format", "features", "no-trees", "missing-list", "lengths", "cycle"],
)
def test_malformed_models_are_config_errors(change: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TreeEnsemble.from_dict({**two_trees(), **change}, where="m.json")


def test_feature_rows_of_the_wrong_width_are_refused() -> None:
    with pytest.raises(ValueError, match=rf"expected feature rows of {N} columns, found"):
        TreeEnsemble.from_dict(two_trees()).predict_proba(np.zeros((2, 3)))


def test_model_files_are_found_by_name_or_path_and_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"detect.bone_model = 'nope.json': no such file"):
        load_bone_model("nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.json: not valid JSON"):
        load_bone_model(str(bad))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(two_trees()))
    assert load_bone_model(str(good)).roots.tolist() == [0, 3]


def test_the_shipped_model_records_its_training() -> None:
    model = load_bone_model()
    assert model.features == PIXEL_FEATURES
    assert model.grid_mm == 0.5
    assert model.depth <= 4
    info = model.info
    # trained on films that neither the detector's fit nor any evaluation uses
    assert info["seeds"] == "8000-8079"
    assert info["script"] == "scripts/train_bone.py"
    held_out = info["balanced_accuracy_held_out_halves"]
    assert min(held_out) > info["balanced_accuracy_anatomy_map"]


def test_exported_trees_reproduce_scikit_learn() -> None:
    """scripts/train_bone.py's export, on a fit to random data, against predict_proba."""
    pytest.importorskip("sklearn", reason="scikit-learn is a test and train dependency")
    from sklearn.ensemble import HistGradientBoostingClassifier

    export = load_script("train_bone").export
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, N))
    y = (x[:, 0] + x[:, 4] * x[:, 5] + rng.normal(scale=0.5, size=4000) > 0).astype(int)
    fit = HistGradientBoostingClassifier(max_depth=4, max_iter=30, random_state=0).fit(x, y)
    doc = {"format": MODEL_FORMAT, "features": list(PIXEL_FEATURES), **export(fit)}
    ours = TreeEnsemble.from_dict(doc).predict_proba(x)
    np.testing.assert_allclose(ours, fit.predict_proba(x)[:, 1], atol=1e-9)


def test_train_bone_samples_the_soft_tissue_the_map_calls_bone() -> None:
    """--hard-per-class adds pixels of truth soft tissue that the first map calls bone, on
    top of the three kinds (same random stream: the first rows are the same)."""
    import dataclasses

    samples = load_script("train_bone").film_samples
    anatomy = dataclasses.replace(load_config().anatomy, bone_model_soft=0.0)
    path = ROOT / "sample_dicoms" / "synth_0001.dcm"
    x0, y0, m0 = samples(path, anatomy, 300, np.random.default_rng(0))
    x1, y1, m1 = samples(path, anatomy, 300, np.random.default_rng(0), hard_per_class=200)
    extra = len(y1) - len(y0)
    assert extra > 0
    np.testing.assert_array_equal(x1[: len(y0)], x0)
    assert not y1[len(y0) :].any()  # not bone by the truth
    assert (m1[len(y0) :] > 0.5).all()  # bone by the map
    assert m0.size == y0.size and m1.size == y1.size


@pytest.mark.slow
def test_bone_probability_beats_the_anatomy_map_on_the_sample_films() -> None:
    """Balanced pixel accuracy against the truth anatomy over the 16 bundled films (none
    of them among the model's training seeds); measured 0.95 for the model, 0.88 for the
    map's own label, when the model was written."""
    cfg = load_config()
    model = load_bone_model()
    truth_all, model_all, map_all = [], [], []
    for path in sorted((ROOT / "sample_dicoms").glob("synth_*.dcm")):
        rg = read_radiograph(str(path))
        field = bone_field(rg, map_anatomy(rg, params=cfg.anatomy), model)
        h, w = field.features.shape[1:]
        truth = cv2.imread(str(path.with_suffix(".anatomy.png")), cv2.IMREAD_UNCHANGED)
        truth = cv2.resize(truth, (w, h), interpolation=cv2.INTER_NEAREST)
        body = (truth == Region.SOFT_TISSUE) | (truth == Region.BONE)
        truth_all.append(truth[body] == Region.BONE)
        model_all.append(model.predict_proba(field.features[:, body].T) > 0.5)
        map_all.append(field.features[PIXEL_FEATURES.index("map_bone")][body] > 0.5)
    y = np.concatenate(truth_all)
    balanced = load_script("train_bone").balanced_accuracy
    acc_model = balanced(y, np.concatenate(model_all))
    acc_map = balanced(y, np.concatenate(map_all))
    assert acc_model >= 0.90
    assert acc_model > acc_map + 0.03


def _mean_alone(field: Any, rows: np.ndarray, cols: np.ndarray, shape: Any, limit: int) -> float:
    """One group's mean bone probability written out: the model pixels holding the
    pixels' centres, each once in raster order, at most ``limit`` spread evenly."""
    h, w = field.features.shape[1:]
    r = np.minimum(((rows + 0.5) * (h / shape[0])).astype(int), h - 1)
    c = np.minimum(((cols + 0.5) * (w / shape[1])).astype(int), w - 1)
    key = np.unique(r * w + c)
    if key.size > limit:
        key = key[np.linspace(0, key.size - 1, limit).round().astype(int)]
    x = field.features.reshape(field.features.shape[0], -1)[:, key].T
    return float(field.model.predict_proba(x).mean())


def test_means_at_gives_each_group_the_mean_it_has_alone() -> None:
    """The detector's per-particle bone probability (one pass of the trees for all of a
    film's particles) is the mean each particle has on its own, including the even
    subsample of a group larger than the limit; mean_at is the one-group case."""
    cfg = load_config()
    rg = read_radiograph(str(ROOT / "sample_dicoms" / "synth_0001.dcm"))
    field = bone_field(rg, map_anatomy(rg, params=cfg.anatomy), load_bone_model())
    shape = (rg.shape[0] // 2, rg.shape[1] // 2)
    rng = np.random.default_rng(3)
    groups = [  # a single pixel, a small blob, a large square, a scattered set
        (np.array([100]), np.array([120])),
        tuple(a.ravel() for a in np.mgrid[200:206, 300:309]),
        tuple(a.ravel() for a in np.mgrid[400:520, 100:260]),
        (rng.integers(0, shape[0], 500), rng.integers(0, shape[1], 500)),
    ]
    rows = np.concatenate([g[0] for g in groups])
    cols = np.concatenate([g[1] for g in groups])
    ids = np.concatenate([np.full(g[0].size, k + 1) for k, g in enumerate(groups)])
    for limit in (MEAN_PIXELS, 16):
        means = field.means_at(rows, cols, ids, shape, limit=limit)
        assert means.shape == (len(groups) + 1,) and means[0] == 0.0  # group 0: no pixels
        for k, (r, c) in enumerate(groups, start=1):
            assert means[k] == pytest.approx(_mean_alone(field, r, c, shape, limit), abs=1e-12)
    for r, c in groups:
        assert field.mean_at(r, c, shape) == pytest.approx(
            _mean_alone(field, r, c, shape, MEAN_PIXELS), abs=1e-12
        )


def test_means_at_remembers_probabilities_without_changing_them() -> None:
    """The detector asks one field for its particles', its candidates' and its regrouped
    candidates' pixels, which overlap: each model pixel's probability is walked once and
    remembered, and every answer is bit for bit what a fresh field gives."""
    cfg = load_config()
    rg = read_radiograph(str(ROOT / "sample_dicoms" / "synth_0001.dcm"))
    anatomy = map_anatomy(rg, params=cfg.anatomy)
    used = bone_field(rg, anatomy, load_bone_model())
    shape = (rg.shape[0] // 2, rg.shape[1] // 2)
    rng = np.random.default_rng(5)
    asks = []
    for _ in range(3):  # overlapping sets of pixels, in groups
        rows = rng.integers(100, 400, 3000)
        cols = rng.integers(100, 400, 3000)
        asks.append((rows, cols, rng.integers(0, 40, 3000)))
    for rows, cols, groups in asks:
        again = used.means_at(rows, cols, groups, shape, limit=16)
        fresh = bone_field(rg, anatomy, load_bone_model()).means_at(
            rows, cols, groups, shape, limit=16
        )
        np.testing.assert_array_equal(again, fresh)


def test_pixel_features_share_the_detectors_contrast_unit_on_a_film_without_bone() -> None:
    """Intensities are in AnatomyMap.contrast_unit: the bone step, else bone minus soft
    tissue, else the film's own spread; a map without bone used to give the bone model a
    fixed 0.2 and the detector the film's spread."""
    import dataclasses

    cfg = load_config()
    rg = read_radiograph(str(ROOT / "sample_dicoms" / "synth_0001.dcm"))
    amap = map_anatomy(rg, params=cfg.anatomy)
    assert amap.bone_step is not None and amap.bone_level is not None
    no_step = dataclasses.replace(amap, bone_step=None)
    no_bone = dataclasses.replace(amap, bone_step=None, bone_level=None)
    v = rg.normalized_on(rg.grid(0.5)[1])
    assert amap.contrast_unit(v) == amap.bone_step
    assert no_step.contrast_unit(v) == pytest.approx(amap.bone_level - amap.soft_tissue_level)
    spread = float(np.percentile(v, 99) - np.percentile(v, 50))
    assert no_bone.contrast_unit(v) == pytest.approx(spread)
    k = PIXEL_FEATURES.index("level_4")
    with_step = pixel_features(rg, amap)[0][k]
    without = pixel_features(rg, no_bone)[0][k]
    # the same smoothed level over a different unit
    assert np.allclose(without * spread, with_step * amap.bone_step, atol=1e-4)


def test_pixel_features_take_the_callers_resampled_film_and_check_its_grid() -> None:
    """The detector passes the 0.5 mm film it already has (one resample, not two): the
    features are the same as from the radiograph, and a film on another grid is refused
    with both shapes named."""
    cfg = load_config()
    rg = read_radiograph(str(ROOT / "sample_dicoms" / "synth_0001.dcm"))
    amap = map_anatomy(rg, params=cfg.anatomy)
    shape = rg.grid(0.5)[1]
    own, _sp = pixel_features(rg, amap)
    given, _sp = pixel_features(rg, amap, normalized=rg.normalized_on(shape))
    assert own.shape == (len(PIXEL_FEATURES), *shape)
    np.testing.assert_array_equal(own, given)
    wrong = rg.normalized_on((shape[0] + 1, shape[1]))
    with pytest.raises(ValueError, match=rf"expected .*{shape[0]}, {shape[1]}.*found"):
        pixel_features(rg, amap, normalized=wrong)


def test_large_blurs_on_a_coarser_grid_stay_close_to_the_full_grid() -> None:
    """The 16 and 32 mm blurs run on a coarser grid (speed). The difference from the
    full-grid blur is mostly the border's reflection, which a 64-pixel sigma carries
    across a small film: measured at most 0.0174 of the bone step over the 16 bundled
    films when this was written (0.018 over 70 dev films, 0.003 on RG1 at 3000 x 3000).
    The bound 0.02 records that measurement; a wrong sigma or grid gives ten times
    more. Session 31: 0.0199 (synth_0003, a hand): the map's second opinion gives the
    palm back to soft tissue, and the cortex step against it, the unit, is smaller."""
    from calcimg.bonemodel import _COARSE_BLUR, _blur, _blur_coarse

    cfg = load_config()
    worst = 0.0
    for path in sorted((ROOT / "sample_dicoms").glob("synth_*.dcm")):
        rg = read_radiograph(str(path))
        amap = map_anatomy(rg, params=cfg.anatomy)
        sp, shape = rg.grid(0.5)
        v = rg.normalized_on(shape)
        unit = amap.contrast_unit(v)
        for sigma_mm, factor in _COARSE_BLUR.items():
            exact = _blur(v, sigma_mm / sp)
            coarse = _blur_coarse(v, sigma_mm / sp, factor)
            assert coarse.shape == exact.shape
            worst = max(worst, float(np.abs(coarse - exact).max()) / unit)
    assert worst < 0.02


def test_many_rows_are_evaluated_in_chunks_with_the_same_values() -> None:
    """More rows than fit in cache go through the trees in chunks (session 25, for the
    particle pass): the probabilities are those of smaller calls, row for row."""
    model = load_bone_model()
    x = np.random.default_rng(0).normal(size=(5000, len(model.features)))
    whole = model.predict_proba(x)
    blocks = np.concatenate([model.predict_proba(x[i : i + 1000]) for i in range(0, 5000, 1000)])
    assert whole.shape == (5000,)
    assert np.array_equal(whole, blocks)


def walk_one_row(model: TreeEnsemble, row: np.ndarray) -> float:
    """The class docstring's reading, one row and one tree at a time, in plain Python."""
    leaves = []
    for root in model.roots:
        node = int(root)
        while model.left[node] >= 0:
            go_left = row[model.feature[node]] <= model.threshold[node]
            node = int(model.left[node] if go_left else model.right[node])
        leaves.append(model.value[node])
    z = model.baseline + np.array(leaves).sum()  # numpy's summation order, as predict_proba
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))


@pytest.mark.parametrize("name", ["bone_trees.json", "confidence_trees.json"])
def test_the_vectorised_walk_reaches_the_leaves_a_plain_walk_reaches(name: str) -> None:
    """predict_proba walks all rows and trees at once on a doubled node layout (session
    26, 3-4x faster); row by row it must give the plain walk's probability, with values
    on the thresholds, NaN (goes right) and infinities."""
    data = json.loads((ROOT / "models" / name).read_text())
    model = TreeEnsemble.from_dict(data, known=tuple(data["features"]))
    rng = np.random.default_rng(26)
    n, k = 60, len(model.features)
    inner = model.left >= 0
    x = rng.normal(size=(n, k))
    for j in range(k):  # half the values exactly on one of the feature's thresholds
        cuts = model.threshold[inner & (model.feature == j)]
        if cuts.size:
            x[::2, j] = rng.choice(cuts, size=(n + 1) // 2)
    x[5, :] = np.nan
    x[7, ::3] = np.inf
    x[9, ::2] = -np.inf
    x[11, rng.integers(0, k, size=4)] = np.nan
    expected = np.array([walk_one_row(model, row) for row in x])
    assert np.array_equal(model.predict_proba(x), expected)


def test_sorted_unique_is_numpys_unique() -> None:
    """means_at dedupes (group, model pixel) codes by sorting (session 26), not with
    numpy 2's hashing np.unique: the same values, empty and single arrays included."""
    from calcimg.bonemodel import _sorted_unique

    rng = np.random.default_rng(5)
    for size in (0, 1, 2, 1000):
        codes = rng.integers(0, 50, size=size) * 3_000_000_000 + rng.integers(0, 40, size=size)
        assert np.array_equal(_sorted_unique(codes), np.unique(codes))


def test_probability_at_is_the_models_probability_of_those_pixels_features() -> None:
    """The anatomy map's second opinion reads a sparse lattice: the same values as the
    trees on those pixels' rows of the whole film's features."""
    cfg = load_config()
    rg = read_radiograph(str(ROOT / "sample_dicoms" / "synth_0008.dcm"))
    amap = map_anatomy(rg, params=cfg.anatomy)
    model = load_bone_model()
    feats, _sp = pixel_features(rg, amap)
    pick = np.zeros(feats.shape[1:], dtype=bool)
    pick[1::3, 1::3] = True
    pick &= amap.labels_on(pick.shape) == Region.BONE
    expected = model.predict_proba(feats[:, pick].T)
    np.testing.assert_allclose(probability_at(rg, amap, model, pick), expected, atol=1e-12)
    with pytest.raises(ValueError, match="pick: expected the model grid's shape"):
        probability_at(rg, amap, model, pick[1:])


def test_the_last_films_planes_serve_only_that_film() -> None:
    """The film planes are kept for the last film (the map and the detector read them
    both): a film sharing the pixel array under another value range gets its own."""
    import dataclasses

    cfg = load_config()
    rg = read_radiograph(str(ROOT / "sample_dicoms" / "synth_0001.dcm"))
    amap = map_anatomy(rg, params=cfg.anatomy)
    first = pixel_features(rg, amap)[0]
    other = dataclasses.replace(rg, value_range=(rg.value_range[0], 2.0 * rg.value_range[1]))
    shared = pixel_features(other, amap)[0]
    cold = pixel_features(dataclasses.replace(other, pixels=other.pixels.copy()), amap)[0]
    np.testing.assert_array_equal(shared, cold)
    assert not np.array_equal(first, shared)
    np.testing.assert_array_equal(pixel_features(rg, amap)[0], first)


def test_the_map_keeps_the_films_planes_and_the_detector_releases_them() -> None:
    """The map's second opinion leaves the bone model's film planes for the detector,
    which reads them last and drops them (kept through the detector, they raised a
    batch's peak memory by 1-7 bytes per film pixel)."""
    from calcimg import bonemodel
    from calcimg.detect import detect

    cfg = load_config()
    rg = read_radiograph(str(ROOT / "sample_dicoms" / "synth_0001.dcm"))
    amap = map_anatomy(rg, params=cfg.anatomy)
    assert bonemodel._LAST_FILM and bonemodel._LAST_FILM[0][0]() is rg.pixels
    detect(rg, amap, params=cfg.detect)
    assert not bonemodel._LAST_FILM


def test_a_releasing_reader_gets_the_features_a_keeping_one_gets() -> None:
    """The detector, the film's last reader, frees each kept plane as it scales it into
    the features (session 32: a 9 MP film's detector peaked 6 bytes per pixel higher
    while the planes, their scaled copies and the stack were alive at once). Its
    features are those of a reader that keeps the planes, whether they were kept or
    computed afresh."""
    from calcimg import bonemodel

    cfg = load_config()
    rg = read_radiograph(str(ROOT / "sample_dicoms" / "synth_0005.dcm"))
    amap = map_anatomy(rg, params=cfg.anatomy)
    kept = pixel_features(rg, amap)[0]
    assert bonemodel._LAST_FILM
    released = pixel_features(rg, amap, release_planes=True)[0]
    assert not bonemodel._LAST_FILM
    cold = pixel_features(rg, amap, release_planes=True)[0]
    assert not bonemodel._LAST_FILM
    assert kept.dtype == np.float32 and kept.shape[0] == len(bonemodel.PIXEL_FEATURES)
    np.testing.assert_array_equal(released, kept)
    np.testing.assert_array_equal(cold, kept)
