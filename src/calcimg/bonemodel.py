"""A learned per-pixel bone probability, for the detector's confidence.

The anatomy map labels bone by thresholds and shapes; where it misses a bone (the fibula
of a knee AP, a vertebra behind the mediastinum, small bones of the hand and foot) the
bone's texture and margins reach the detector as soft-tissue candidates, and these are
its commonest false findings. This module estimates, for any pixel, the probability that
it lies on bone from local intensity and shape measures on a coarse grid (``grid_mm`` of
the model, 0.5 mm), with a small ensemble of regression trees (gradient boosting, 200
trees of depth 4) trained by ``scripts/train_bone.py`` on simulated films' truth anatomy.
The detector uses the mean over a candidate's pixels as one confidence feature
(``bone_prob``); the anatomy map reads it on a sparse lattice (:func:`probability_at`)
for a second opinion on its threshold bone. Both read the same film planes (blurs,
Hessians, gradients), which are kept for the last film analysed.

The trees are stored as plain arrays in ``models/bone_trees.json`` (with the training
seeds and the accuracy measured when they were written) and evaluated here with numpy: no
learning library is needed to run calcimg.

Pixel features (:data:`PIXEL_FEATURES`; intensities in units of the film's bone step,
:meth:`calcimg.anatomy.AnatomyMap.contrast_unit`, relative to its soft-tissue level; ``gS`` is
the film smoothed by a Gaussian of S mm):

- ``map_bone``, ``map_joint``: the anatomy map's label (1 or 0);
- ``dist_out_mm``, ``dist_in_mm``: distance to the map's bone from outside and from
  inside, capped at 10 mm;
- ``level_1``, ``level_4``, ``level_8``, ``level_16``: ``gS`` minus the soft-tissue level;
- ``dog_2_8``, ``dog_4_16``, ``dog_8_32``: differences of Gaussians;
- ``hess_2_min``, ``hess_2_max``, ``hess_4_min``, ``hess_4_max``, ``hess_8_min``: the
  Hessian's eigenvalues at 2, 4 and 8 mm, scale-normalised (ridges, blobs, edges);
- ``grad_1``, ``grad_3``: gradient magnitude at 1 and 3 mm, scale-normalised;
- ``texture``: local RMS of the film's fine detail (below 0.75 mm) over 1.5 mm.
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from calcimg.anatomy import AnatomyMap, Region
from calcimg.errors import ConfigError
from calcimg.params import model_file
from calcimg.radiograph import Radiograph

__all__ = [
    "MEAN_PIXELS",
    "MODEL_FORMAT",
    "PIXEL_FEATURES",
    "BoneField",
    "TreeEnsemble",
    "bone_field",
    "kept_film",
    "load_bone_model",
    "load_tree_model",
    "pixel_features",
    "probability_at",
]

MODEL_FORMAT = "calcimg-trees/1"
"""The ``format`` field of a tree-ensemble file this module reads."""

PIXEL_FEATURES = (
    "map_bone",
    "map_joint",
    "dist_out_mm",
    "dist_in_mm",
    "level_1",
    "level_4",
    "level_8",
    "level_16",
    "dog_2_8",
    "dog_4_16",
    "dog_8_32",
    "hess_2_min",
    "hess_2_max",
    "hess_4_min",
    "hess_4_max",
    "hess_8_min",
    "grad_1",
    "grad_3",
    "texture",
)
"""Per-pixel features the bone model reads, in its column order."""

_DIST_CAP_MM = 10.0

MEAN_PIXELS = 256
"""Most model-grid pixels :meth:`BoneField.mean_at` evaluates for one mean."""

_CHUNK_ROWS = 512
"""Rows :meth:`TreeEnsemble.predict_proba` evaluates at once; more go in chunks. Each
chunk holds a few (rows, trees) index arrays: 2048 rows of the bone model's 200 trees
were 3.3 MB each, and a 2 MP film's detector peaked in them. 512 rows cost the same
within this machine's noise (session 32: 60 000 random rows 250 ms against 266-276 ms;
RG1's detector at 3000 x 3000, alternated in one process, 0.662 s against 0.641 s)."""


@dataclass(frozen=True, slots=True, eq=False)
class TreeEnsemble:
    """Binary classifier: additive regression trees on a logit scale.

    Nodes of all trees are concatenated; tree ``t`` starts at node ``roots[t]``. A node
    with ``left < 0`` is a leaf holding ``value``; otherwise a sample goes to ``left``
    when ``x[feature] <= threshold`` and to ``right`` otherwise. The probability is
    ``sigmoid(baseline + sum of the leaves reached)``.
    """

    features: tuple[str, ...]
    grid_mm: float
    baseline: float
    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    depth: int
    """Longest root-to-leaf path (edges)."""
    info: dict[str, Any]
    """Provenance written with the model (training seeds, library, measured accuracy)."""
    _walk: tuple[np.ndarray, ...] = field(init=False, repr=False)
    """The nodes laid out for :meth:`predict_proba` (:func:`_walk_arrays`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_walk", _walk_arrays(self))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probability of the positive class for each row of ``x``.

        Parameters
        ----------
        x : ndarray, shape (n, len(features))
            Feature rows in :attr:`features` order.

        Returns
        -------
        ndarray of float64, shape (n,)
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(
                f"expected feature rows of {len(self.features)} columns, found shape {x.shape}"
            )
        if x.shape[0] > _CHUNK_ROWS:
            # a few thousand rows keep the (rows, trees) node arrays in cache: RG1's
            # particle pass took 0.30 s at once and 0.19 s in chunks (same values,
            # session 25, before the doubled layout of _walk_arrays); each chunk is
            # made float64 on its own, so that the rows never exist as one float64
            # array (152 bytes a row of 19 features)
            return np.concatenate(
                [
                    self.predict_proba(x[i : i + _CHUNK_ROWS])
                    for i in range(0, x.shape[0], _CHUNK_ROWS)
                ]
            )
        x = np.asarray(x, dtype=np.float64)
        feat, thr, child, value, roots = self._walk
        n = x.shape[0]
        flat = np.ascontiguousarray(x).ravel()
        offset = (np.arange(n, dtype=np.intp) * x.shape[1])[:, None]
        node = np.broadcast_to(roots, (n, roots.size)).copy()
        for _ in range(self.depth):
            col = feat.take(node)
            col += offset
            # NaN goes right, as "x <= threshold" is false for it
            right = np.less_equal(flat.take(col), thr.take(node))
            np.logical_not(right, out=right)
            node += right
            node = child.take(node)
        z = self.baseline + value.take(node).sum(axis=1)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        *,
        where: str = "bone model",
        known: tuple[str, ...] | None = None,
    ) -> TreeEnsemble:
        """Build from the JSON layout written by ``scripts/train_bone.py`` (or
        ``scripts/train_confidence.py``).

        Parameters
        ----------
        data : dict
            The parsed file.
        where : str
            What the model is, for messages (its path).
        known : tuple of str, optional
            Feature names the model may read, in any order and any subset (the rows given
            to :meth:`predict_proba` follow the model's own :attr:`features`). None: the
            bone model's :data:`PIXEL_FEATURES`, exactly and in order.

        Raises
        ------
        ConfigError
            Wrong format, unexpected features, or malformed trees.
        """
        fmt = data.get("format")
        if fmt != MODEL_FORMAT:
            raise ConfigError(f"{where}: format {fmt!r}; expected {MODEL_FORMAT!r}")
        feats = tuple(data.get("features", ()))
        if known is None:
            if feats != PIXEL_FEATURES:
                raise ConfigError(
                    f"{where}: features {list(feats)}; expected {list(PIXEL_FEATURES)} "
                    "(retrain with scripts/train_bone.py)"
                )
        else:
            unknown = [f for f in feats if f not in known]
            if not feats or unknown:
                raise ConfigError(
                    f"{where}: features {unknown or list(feats)} are not features it can be "
                    f"given; expected names among {list(known)}"
                )
        roots: list[int] = []
        feature: list[int] = []
        left: list[int] = []
        right: list[int] = []
        threshold: list[float] = []
        value: list[float] = []
        depth = 0
        for k, tree in enumerate(data.get("trees", ())):
            try:
                f = [int(v) for v in tree["feature"]]
                t = [float(v) for v in tree["threshold"]]
                lo = [int(v) for v in tree["left"]]
                hi = [int(v) for v in tree["right"]]
                val = [float(v) for v in tree["value"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(
                    f"{where}: tree {k}: {exc}; expected lists feature, "
                    "threshold, left, right, value"
                ) from exc
            n = len(f)
            if n == 0 or not all(len(a) == n for a in (t, lo, hi, val)):
                raise ConfigError(f"{where}: tree {k}: node lists of unequal or zero length")
            for i in range(n):
                if lo[i] >= 0 and not (i < lo[i] < n and i < hi[i] < n):
                    raise ConfigError(f"{where}: tree {k} node {i}: children out of order")
                if lo[i] >= 0 and not 0 <= f[i] < len(feats):
                    raise ConfigError(f"{where}: tree {k} node {i}: feature {f[i]} unknown")
            base = len(feature)
            roots.append(base)
            depth = max(depth, _depth(lo, hi))
            feature += [max(v, 0) for v in f]
            threshold += t
            left += [base + v if v >= 0 else -1 for v in lo]
            right += [base + v if v >= 0 else -1 for v in hi]
            value += val
        if not roots:
            raise ConfigError(f"{where}: no trees")
        return cls(
            features=feats,
            grid_mm=float(data.get("grid_mm", 0.5)),
            baseline=float(data.get("baseline", 0.0)),
            roots=np.array(roots, dtype=np.intp),
            feature=np.array(feature, dtype=np.intp),
            threshold=np.array(threshold, dtype=np.float64),
            left=np.array(left, dtype=np.intp),
            right=np.array(right, dtype=np.intp),
            value=np.array(value, dtype=np.float64),
            depth=depth,
            info=dict(data.get("training", {})),
        )


def _walk_arrays(model: TreeEnsemble) -> tuple[np.ndarray, ...]:
    """Node arrays indexed by twice the node number, so that one walk step is a few takes.

    Slot ``2i`` holds node ``i``'s feature, threshold and value, and the left child's
    slot; ``2i + 1`` the right child's slot. A leaf points to itself both ways and
    compares against +inf, so rows that reach a leaf early stay there without a test.
    The walk gives the same leaves as the ``left < 0`` reading in the class docstring.

    Returns
    -------
    tuple of ndarray
        Feature, threshold, child, value (each of length twice the nodes) and the roots'
        slots.
    """
    inner = model.left >= 0
    slot = 2 * np.arange(model.left.size, dtype=np.intp)
    feat = np.zeros(2 * slot.size, dtype=np.intp)
    feat[0::2] = np.where(inner, model.feature, 0)
    thr = np.full(2 * slot.size, np.inf)
    thr[0::2] = np.where(inner, model.threshold, np.inf)
    child = np.empty(2 * slot.size, dtype=np.intp)
    child[0::2] = np.where(inner, 2 * model.left, slot)
    child[1::2] = np.where(inner, 2 * model.right, slot)
    value = np.zeros(2 * slot.size)
    value[0::2] = model.value
    return feat, thr, child, value, 2 * model.roots.astype(np.intp)


def _depth(left: list[int], right: list[int]) -> int:
    """Longest root-to-leaf path of one tree (children come after their parent)."""
    d = [0] * len(left)
    for i in range(len(left)):
        if left[i] >= 0:
            d[left[i]] = d[right[i]] = d[i] + 1
    return max(d)


def load_bone_model(
    name: str = "bone_trees.json", *, qualname: str = "detect.bone_model"
) -> TreeEnsemble:
    """Load a bone model (cached per path and modification time).

    Parameters
    ----------
    name : str
        A path, or a file name in ``models/`` (:func:`calcimg.params.models_dir`).
    qualname : str
        The parameter that named it, for errors (the detector's or the anatomy map's).

    Raises
    ------
    ConfigError
        Missing file, invalid JSON, or a model that fails :meth:`TreeEnsemble.from_dict`.
    """
    return load_tree_model(
        name, qualname=qualname, expected="a tree model such as 'bone_trees.json'"
    )


def load_tree_model(
    name: str, *, qualname: str, expected: str, known: tuple[str, ...] | None = None
) -> TreeEnsemble:
    """Load a tree model file (cached per path and modification time).

    Parameters
    ----------
    name : str
        A path, or a file name in ``models/``.
    qualname, expected : str
        The parameter naming the file and what it should be, for messages.
    known : tuple of str, optional
        As for :meth:`TreeEnsemble.from_dict`.

    Raises
    ------
    ConfigError
        Missing file, invalid JSON, or a model that fails :meth:`TreeEnsemble.from_dict`.
    """
    p = model_file(name, qualname=qualname, expected=expected).resolve()
    return _load_cached(str(p), os.stat(p).st_mtime_ns, known)


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int, known: tuple[str, ...] | None) -> TreeEnsemble:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return TreeEnsemble.from_dict(data, where=path, known=known)


def _blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)


_COARSE_BLUR = {16: 2, 32: 4}
"""Blurs of these sigmas (mm) run on a grid this many times coarser, then are
interpolated back: on RG1 at 3000 x 3000 (0.5 mm grid) 32 -> 4 ms and 72 -> 2 ms. They
differ from the full-grid blur by at most 0.003 of the bone step there, and by up to
0.018 on smaller films, where a 64-pixel sigma carries the border's reflection across
the film (16 bundled and 70 dev films; p90 0.01). The detector's findings on the 210
dev and dev_anat films are the same either way."""


def _blur_coarse(img: np.ndarray, sigma_px: float, factor: int) -> np.ndarray:
    """:func:`_blur` of ``img`` computed on a grid ``factor`` times coarser."""
    h, w = img.shape
    small = cv2.resize(
        img, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA
    )
    out = _blur(small, sigma_px * small.shape[0] / h)
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)


def _hessian(smooth: np.ndarray, scale_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale-normalised Hessian eigenvalues (smaller, larger) of a smoothed image."""
    # 3x3 Sobel second derivatives are 4x the derivative (their [1, 2, 1] smoothing and
    # the central differences' 1/2 twice): folded into the scale normalisation
    dyy = cv2.Sobel(smooth, cv2.CV_32F, 0, 2, ksize=3)
    dxx = cv2.Sobel(smooth, cv2.CV_32F, 2, 0, ksize=3)
    dxy = cv2.Sobel(smooth, cv2.CV_32F, 1, 1, ksize=3)
    half = (dxx + dyy) * np.float32(0.5)
    root = np.sqrt(((dxx - dyy) * np.float32(0.5)) ** 2 + dxy * dxy)
    k = np.float32(scale_px * scale_px / 4.0)
    return (half - root) * k, (half + root) * k


def _gradient(smooth: np.ndarray, scale_px: float) -> np.ndarray:
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt(gx * gx + gy * gy) * np.float32(scale_px / 8.0)


_LAST_FILM: list[tuple[weakref.ref[np.ndarray], tuple[object, ...], dict[str, np.ndarray]]] = []
"""The last film's :func:`_film_planes` (one entry, dropped with the film's pixels)."""
_LAST_FILM_LOCK = threading.Lock()


def _film_planes(
    radiograph: Radiograph,
    shape: tuple[int, int],
    sp: float,
    normalized: np.ndarray | None,
    release: bool = False,
) -> dict[str, np.ndarray]:
    """The film's planes behind :data:`PIXEL_FEATURES` that do not depend on its map (the
    film ``v`` on the grid, its blurs, differences of Gaussians, Hessians, gradients and
    texture), before the soft-tissue level and contrast unit are applied.

    The anatomy map's second opinion on bone and the detector read the same film on the
    same grid: the last film's planes are kept (keyed by its pixel array, released with
    it, and by all else they depend on), so that the second costs no blur (0.12 s on a
    3000 x 3000 film). ``release``: the caller is the film's last reader (the
    detector); the planes are not kept beyond this call (they are 16 film-grid planes:
    kept through the detector, a batch's peak memory rose by 1-7 bytes per film pixel).
    """
    key = (shape, sp, radiograph.value_range)
    with _LAST_FILM_LOCK:
        if _LAST_FILM:
            ref, key_c, planes = _LAST_FILM[0]
            if ref() is radiograph.pixels and key_c == key:
                if release:
                    _LAST_FILM.clear()
                return planes
    v = radiograph.normalized_on(shape) if normalized is None else normalized
    px = 1.0 / sp  # pixels per mm
    g = {
        s: _blur_coarse(v, s * px, _COARSE_BLUR[s]) if s in _COARSE_BLUR else _blur(v, s * px)
        for s in (1, 2, 4, 8, 16, 32)
    }
    h2, h4, h8 = (_hessian(g[s], s * px) for s in (2, 4, 8))
    fine = v - _blur(v, 0.75 * px)
    planes = {
        "v": v,
        "level_1": g[1],
        "level_4": g[4],
        "level_8": g[8],
        "level_16": g[16],
        "dog_2_8": g[2] - g[8],
        "dog_4_16": g[4] - g[16],
        "dog_8_32": g[8] - g[32],
        "hess_2_min": h2[0],
        "hess_2_max": h2[1],
        "hess_4_min": h4[0],
        "hess_4_max": h4[1],
        "hess_8_min": h8[0],
        "grad_1": _gradient(g[1], 1 * px),
        "grad_3": _gradient(_blur(v, 3 * px), 3 * px),
        "texture": np.sqrt(np.maximum(_blur(fine * fine, 1.5 * px), 0.0)),
    }
    with _LAST_FILM_LOCK:
        if release:
            _LAST_FILM.clear()
        else:
            _LAST_FILM[:] = [(weakref.ref(radiograph.pixels, _forget), key, planes)]
    return planes


def kept_film(radiograph: Radiograph, shape: tuple[int, int]) -> np.ndarray | None:
    """``radiograph.normalized_on(shape)`` as the film's kept planes hold it, or None.

    The anatomy map resamples the film to the bone model's grid and its planes keep it
    (:func:`_film_planes`); the detector's surround reads the same grid, and resampling
    a 3000 x 3000 film again cost 20 ms. The array is shared: do not write into it.
    """
    with _LAST_FILM_LOCK:
        if _LAST_FILM:
            ref, (shape_c, _sp, range_c), planes = _LAST_FILM[0]
            same = shape_c == shape and range_c == radiograph.value_range
            if same and ref() is radiograph.pixels:
                return planes["v"]
    return None


def _forget(_ref: object) -> None:
    """Drop the cached planes once their film's pixels are gone."""
    with _LAST_FILM_LOCK:
        _LAST_FILM[:] = [e for e in _LAST_FILM if e[0] is not _ref]


def pixel_features(
    radiograph: Radiograph,
    anatomy: AnatomyMap,
    grid_mm: float = 0.5,
    *,
    normalized: np.ndarray | None = None,
    release_planes: bool = False,
) -> tuple[np.ndarray, float]:
    """The :data:`PIXEL_FEATURES` of every pixel of a ``grid_mm`` grid over the film.

    Parameters
    ----------
    radiograph : Radiograph
    anatomy : AnatomyMap
        Its map (labels, distances, soft-tissue level and bone step).
    grid_mm : float
        Grid spacing in mm (films coarser than that keep their own spacing).
    normalized : ndarray, optional
        ``radiograph.normalized_on`` of the grid, when the caller already has it (the
        detector's surround reads the same grid): not resampled again.
    release_planes : bool
        The caller is the film's last reader: its kept film planes are dropped.

    Returns
    -------
    features : ndarray of float32, shape (len(PIXEL_FEATURES), rows, columns)
        One plane per feature (a pixel's row of features is ``features[:, r, c]``):
        stacking them plane by plane is a contiguous copy, pixel-interleaved it cost
        a 3000 x 3000 film 60-140 ms.
    spacing_mm : float
        The grid's spacing.
    """
    sp, shape = radiograph.grid(grid_mm)
    return _features(radiograph, anatomy, sp, shape, normalized, None, release_planes), sp


def probability_at(
    radiograph: Radiograph,
    anatomy: AnatomyMap,
    model: TreeEnsemble,
    pick: np.ndarray,
    *,
    normalized: np.ndarray | None = None,
) -> np.ndarray:
    """The bone probability of the pixels ``pick`` of the model's grid, in raster order.

    The same as ``model.predict_proba`` of those pixels' rows of :func:`pixel_features`,
    without building the whole film's feature planes (the anatomy map reads a sparse
    lattice of them).

    Parameters
    ----------
    radiograph : Radiograph
    anatomy : AnatomyMap
    model : TreeEnsemble
    pick : ndarray of bool
        The model grid's shape (``radiograph.grid(model.grid_mm)``).
    normalized : ndarray, optional
        As for :func:`pixel_features`.

    Returns
    -------
    ndarray of float64, shape (pick.sum(),)
    """
    sp, shape = radiograph.grid(model.grid_mm)
    if pick.shape != shape:
        raise ValueError(f"pick: expected the model grid's shape {shape}, found {pick.shape}")
    if not pick.any():
        return np.zeros(0)
    return model.predict_proba(_features(radiograph, anatomy, sp, shape, normalized, pick, False).T)


def _features(
    radiograph: Radiograph,
    anatomy: AnatomyMap,
    sp: float,
    shape: tuple[int, int],
    normalized: np.ndarray | None,
    pick: np.ndarray | None,
    release: bool,
) -> np.ndarray:
    """:data:`PIXEL_FEATURES` as planes (``pick`` None) or at the pixels ``pick`` (one
    column per pixel)."""
    if normalized is not None and normalized.shape != shape:
        raise ValueError(
            f"normalized: expected the {sp} mm grid's shape {shape}, found {normalized.shape}"
        )

    def at(a: np.ndarray) -> np.ndarray:
        return a if pick is None else a[pick]

    film = _film_planes(radiograph, shape, sp, normalized, release)
    labels = anatomy.labels_on(shape)
    bone = (labels == Region.BONE).astype(np.uint8)
    soft = anatomy.soft_tissue_level
    if soft is None:
        soft = float(np.median(film["v"]))
    inv = np.float32(1.0 / anatomy.contrast_unit(film["v"]))
    soft32 = np.float32(soft)
    # written plane by plane into one array: stacking separate planes held the film's
    # planes, the scaled copies and the stack at once (a 9 MP film's detector peaked
    # there, 6 bytes per film pixel above its steady state)
    cells = shape if pick is None else (int(pick.sum()),)
    out = np.empty((len(PIXEL_FEATURES), *cells), np.float32)
    out[0] = at(bone)
    out[1] = at(labels) == Region.JOINT_SPACE
    out[2] = np.minimum(at(anatomy.distance_to_bone_mm_on(shape)), _DIST_CAP_MM)
    out[3] = np.minimum(at(cv2.distanceTransform(bone, cv2.DIST_L2, 5)) * sp, _DIST_CAP_MM)
    drop = release and pick is None  # the planes are this call's alone: freed as read
    for i, name in enumerate(PIXEL_FEATURES[4:], start=4):
        plane = at(film.pop(name) if drop else film[name])
        if name.startswith("level_"):
            np.subtract(plane, soft32, out=out[i])
            out[i] *= inv
        else:
            np.multiply(plane, inv, out=out[i])
        del plane
    return out


@dataclass(frozen=True, slots=True, eq=False)
class BoneField:
    """Bone probability over a film, evaluated on demand at the pixels asked for."""

    features: np.ndarray
    """:func:`pixel_features` of the film on the model's grid (one plane per feature)."""
    model: TreeEnsemble
    _known: np.ndarray = field(init=False, repr=False)
    """Each model pixel's probability once computed, NaN before: the detector asks for
    its particles' pixels, then its candidates' (made of those particles), then its
    regrouped candidates', and the trees walk each pixel once."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_known", np.full(self.features.shape[1:], np.nan, dtype=np.float64)
        )

    def mean_at(self, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> float:
        """Mean bone probability over pixels of a grid of ``shape`` spanning the film.

        Each pixel is mapped to the model grid's pixel containing its centre; each model
        pixel counts once. Over more than :data:`MEAN_PIXELS` model pixels the mean is
        taken over that many spread evenly through them (in raster order): the trees cost
        about 5 us a pixel, and a large clump covers 20 000 of them.
        """
        rows = np.asarray(rows)
        if rows.size == 0:
            return 0.0
        return float(self.means_at(rows, cols, np.zeros(rows.shape, np.intp), shape)[0])

    def means_at(
        self,
        rows: np.ndarray,
        cols: np.ndarray,
        groups: np.ndarray,
        shape: tuple[int, int],
        *,
        limit: int = MEAN_PIXELS,
    ) -> np.ndarray:
        """:meth:`mean_at` for many groups of pixels at once (one pass of the trees).

        Parameters
        ----------
        rows, cols : ndarray of int
            Pixels of a grid of ``shape`` spanning the film.
        groups : ndarray of int
            The group (0, 1, ...) of each pixel.
        shape : tuple of int
        limit : int
            Most model pixels evaluated per group (spread evenly through its pixels in
            raster order).

        Returns
        -------
        ndarray of float64, shape (groups.max() + 1,)
            Each group's mean, as :meth:`mean_at` gives it for the group's pixels alone
            (with ``limit`` for :data:`MEAN_PIXELS`); 0 for a group without pixels.
        """
        h, w = self.features.shape[1:]
        groups = np.asarray(groups, dtype=np.intp)
        n = int(groups.max()) + 1 if groups.size else 0
        r = np.minimum(((np.asarray(rows) + 0.5) * (h / shape[0])).astype(np.intp), h - 1)
        c = np.minimum(((np.asarray(cols) + 0.5) * (w / shape[1])).astype(np.intp), w - 1)
        # (group, model pixel) pairs, each once, sorted by group then raster order
        pair = _sorted_unique(groups * (h * w) + r * w + c)
        g, key = np.divmod(pair, h * w)
        counts = np.bincount(g, minlength=n)
        keep = np.ones(pair.size, dtype=bool)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if n else counts
        for k in np.nonzero(counts > limit)[0]:
            s0, m = int(starts[k]), int(counts[k])
            keep[s0 : s0 + m] = False
            keep[s0 + np.linspace(0, m - 1, limit).round().astype(np.intp)] = True
        g, key = g[keep], key[keep]
        uniq = _sorted_unique(key)
        inv = np.searchsorted(uniq, key)
        known = self._known.reshape(-1)
        todo = uniq[np.isnan(known[uniq])]
        if todo.size:  # a pixel's probability does not depend on the rows beside it
            x = self.features.reshape(self.features.shape[0], -1)[:, todo].T
            known[todo] = self.model.predict_proba(x)
        prob = known[uniq][inv]
        total = np.bincount(g, weights=prob, minlength=n)
        used = np.bincount(g, minlength=n)
        return np.divide(total, used, out=np.zeros(n), where=used > 0)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` of a 1-d integer array, by sorting: numpy 2's hashing unique
    took 40 ms a call over RG3's 505 000 particle pixels, this 9 ms with the codes' sums
    (session 26; the same values)."""
    s = np.sort(values)
    if s.size < 2:
        return s
    return s[np.concatenate(([True], s[1:] != s[:-1]))]


def bone_field(
    radiograph: Radiograph,
    anatomy: AnatomyMap,
    model: TreeEnsemble,
    *,
    normalized: np.ndarray | None = None,
    release_planes: bool = False,
) -> BoneField:
    """The film's :class:`BoneField` under ``model`` (features on the model's grid;
    ``normalized`` and ``release_planes``: see :func:`pixel_features`)."""
    feats, _sp = pixel_features(
        radiograph,
        anatomy,
        model.grid_mm,
        normalized=normalized,
        release_planes=release_planes,
    )
    return BoneField(features=feats, model=model)
