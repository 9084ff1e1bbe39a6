"""Anatomy map on drawn phantoms (known masks) and on real radiographs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from calcimg.anatomy import AnatomyParams, Region, map_anatomy
from calcimg.errors import ConfigError
from calcimg.ingest import read_radiograph
from calcimg.radiograph import Radiograph
from calcimg.result import Confounder
from phantoms import film_of, make_phantom
from realdata import SAMPLES, SHARED_DICOM


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_phantom_body_and_bone_match_the_drawn_masks() -> None:
    ph = make_phantom(0.2)
    amap = map_anatomy(ph.radiograph, params=AnatomyParams())
    assert amap.labels.shape == ph.radiograph.shape
    # the phantom's skin thins smoothly to air; the outermost ~1 mm is at air level
    assert _iou(amap.labels > 0, ph.body) > 0.85
    assert _iou(amap.labels == Region.BONE, ph.bone) > 0.75
    # the cortex is a subset of bone
    assert not (amap.cortex & (amap.labels != Region.BONE)).any()
    assert amap.cortex.any()


@pytest.mark.parametrize("method", ["threshold", "edges"])
def test_bone_methods_keep_calcifications_out_of_bone(method: str) -> None:
    # two calcified spheres (3 and 5 mm) and a tram-track beside the shaft: sharp-edged
    # and bright, but rounded or thin, so neither method may call them bone
    ph = make_phantom(0.2, blobs=((30.0, 20.0, 3.0), (80.0, 85.0, 5.0)), tram=(20, 100, 90, 3.0))
    amap = map_anatomy(ph.radiograph, params=AnatomyParams(bone_method=method))
    bone = amap.labels == Region.BONE
    assert _iou(bone, ph.bone) > 0.9
    for name, mask in ph.lesions.items():
        assert bone[mask].mean() < 0.05, name


def test_distance_to_bone_is_in_mm() -> None:
    ph = make_phantom(0.2)
    amap = map_anatomy(ph.radiograph, params=AnatomyParams())
    # the bone's edge is at 44 mm; a pixel at 30 mm is about 14 mm from it
    col = round(30.0 / 0.2)
    d = float(amap.distance_to_bone_mm[300, col])
    assert 11.0 < d < 17.0
    assert float(amap.distance_to_bone_mm[300, round(55.0 / 0.2)]) == 0.0


def test_metal_disc_is_a_confounder_and_foreign() -> None:
    ph = make_phantom(0.2, metal=(90.0, 80.0, 4.0))
    amap = map_anatomy(ph.radiograph, params=AnatomyParams())
    metal = [c for c in amap.confounders if c.kind == "metal"]
    assert len(metal) == 1
    r0, c0, r1, c1 = metal[0].bbox
    assert r0 <= 450 < r1 and c0 <= 400 < c1  # the disc's centre, pixels
    assert 35.0 < metal[0].area_mm2 < 80.0  # pi * 4^2 = 50 mm2
    assert amap.labels[450, 400] == Region.FOREIGN


@pytest.mark.parametrize("min_density", [1.0, 0.0])
def test_an_edge_enhanced_dense_deposit_is_not_metal(min_density: float) -> None:
    # a 2 mm deposit whose peak lies half-way from the soft tissue to the cortex, and a
    # metal disc, under strong edge enhancement (v + 1.0 (v - G_2mm v), as a vendor's
    # processing): the overshoot lifts the deposit far above its own surroundings, as
    # far as metal stands above a plain film's, but not above the (equally lifted) cortex
    sp = 0.2
    ph = make_phantom(sp, metal=(90.0, 80.0, 2.0))
    px = ph.radiograph.pixels.astype(np.float32)
    soft = float(np.median(px[ph.body & ~ph.bone]))
    cortex = float(np.percentile(px[ph.bone], 95))
    rr, cc = np.mgrid[: px.shape[0], : px.shape[1]] * sp
    d2 = (rr - 30.0) ** 2 + (cc - 25.0) ** 2
    around = float(np.median(px[(d2 > 25.0) & (d2 < 64.0)]))
    peak = soft + 0.5 * (cortex - soft)
    px += (peak - around) * np.sqrt(np.maximum(4.0 - d2, 0.0)) / 2.0
    px = np.clip(px + 1.0 * (px - cv2.GaussianBlur(px, (0, 0), 2.0 / sp)), 0, 4095)
    amap = map_anatomy(film_of(px, sp), params=AnatomyParams(metal_min_density=min_density))
    on_deposit = amap.labels[d2 <= 4.0] == Region.FOREIGN
    assert (amap.labels[ph.metal] == Region.FOREIGN).all()
    if min_density:
        assert not on_deposit.any()
        assert [c.kind for c in amap.confounders] == ["metal"]
    else:  # without the density test the enhanced deposit is metal
        assert on_deposit.all()


def test_region_maps_are_the_same_at_half_the_spacing() -> None:
    a = map_anatomy(make_phantom(0.2).radiograph, params=AnatomyParams())
    b = map_anatomy(make_phantom(0.1).radiograph, params=AnatomyParams())
    bone_a = (a.labels == Region.BONE)[::1, ::1]
    bone_b = (b.labels == Region.BONE)[::2, ::2]
    assert _iou(bone_a, bone_b) > 0.9


@pytest.mark.slow
def test_rg3_marker_is_not_body_and_the_leg_bones_are_bone() -> None:
    from tests.test_detect import rg3_path

    from calcimg.ingest import read_radiograph

    rg = read_radiograph(rg3_path())
    amap = map_anatomy(rg, params=AnatomyParams())
    # the lead "R" marker (rows ~1370-1470, cols ~1140-1225) is never soft tissue
    window = amap.labels[1370:1470, 1140:1225]
    assert not (window == Region.SOFT_TISSUE).any()
    # the tibia and fibula (columns ~800-1020 at rows 600-700) are mostly bone
    assert (amap.labels[600:700, 800:1020] == Region.BONE).mean() > 0.6
    # and the calf beside them is not bone
    assert (amap.labels[600:700, 700:780] == Region.BONE).mean() < 0.1


def test_uniform_and_tiny_films_do_not_crash() -> None:
    ph = make_phantom(0.2)
    flat = dataclasses.replace(ph.radiograph, pixels=np.full((64, 64), 1000.0, np.float32))
    amap = map_anatomy(flat, params=AnatomyParams())
    assert amap.labels.shape == (64, 64)
    assert not (amap.labels == Region.BONE).any()
    assert np.isinf(amap.distance_to_bone_mm).all()
    tiny = dataclasses.replace(ph.radiograph, pixels=ph.radiograph.pixels[:169, :211].copy())
    amap = map_anatomy(tiny, params=AnatomyParams())
    assert amap.labels.shape == (169, 211)
    assert np.isfinite(amap.distance_to_bone_mm[amap.labels == Region.BONE]).all()


def test_collimated_band_is_background_and_listed() -> None:
    ph = make_phantom(0.2)
    px = ph.radiograph.pixels.copy()
    px[:60, :] = 3800.0 + np.random.default_rng(1).normal(0, 4.0, (60, px.shape[1]))
    amap = map_anatomy(dataclasses.replace(ph.radiograph, pixels=px), params=AnatomyParams())
    assert "collimation" in {c.kind for c in amap.confounders}
    assert (amap.labels[:55, :] == Region.BACKGROUND).mean() > 0.95
    bone = amap.labels == Region.BONE
    assert _iou(bone[80:], ph.bone[80:]) > 0.75


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"grid_mm": 0.0}, r"anatomy\.grid_mm = 0\.0 is out of range"),
        ({"soft_poly_degree": 9}, r"anatomy\.soft_poly_degree = 9 is out of range"),
        ({"cortex_mm": -1.0}, r"anatomy\.cortex_mm = -1\.0 is out of range"),
        ({"bone_method": "snakes"}, r"anatomy\.bone_method = 'snakes' is not a valid choice"),
    ],
    ids=["grid-zero", "poly-degree-too-high", "negative-cortex", "unknown-bone-method"],
)
def test_params_are_validated(overrides: dict[str, float], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        AnatomyParams(**overrides)  # type: ignore[arg-type]


def test_unknown_anatomy_parameter_lists_the_valid_ones() -> None:
    from calcimg.config import load_config

    with pytest.raises(
        ConfigError, match=r"unknown parameter\(s\) anatomy\.nope.*bone_min_area_mm2"
    ):
        load_config(overrides=["anatomy.nope=1"])


@pytest.mark.parametrize("spacing", [0.2, 0.13], ids=["0.2mm", "0.13mm"])
def test_grid_maps_served_at_film_resolution_match_cv2_resize(spacing: float) -> None:
    import cv2

    ph = make_phantom(spacing)
    amap = map_anatomy(ph.radiograph, params=AnatomyParams())
    h, w = ph.radiograph.shape
    assert amap.grid_labels.shape < (h, w)
    size = (w, h)
    labels = cv2.resize(amap.grid_labels, size, interpolation=cv2.INTER_NEAREST)
    dist = cv2.resize(amap.grid_distance_to_bone_mm, size, interpolation=cv2.INTER_LINEAR)
    joints = cv2.resize(amap.grid_joint_labels, size, interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(amap.labels, labels)
    assert np.array_equal(amap.distance_to_bone_mm, dist)
    assert np.array_equal(amap.joint_labels, joints)
    cortex = cv2.resize(amap.grid_cortex.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(amap.cortex, cortex > 0)
    rng = np.random.default_rng(3)
    for _ in range(40):
        r0, c0 = int(rng.integers(0, h - 1)), int(rng.integers(0, w - 1))
        r1, c1 = int(rng.integers(r0 + 1, h + 5)), int(rng.integers(c0 + 1, w + 5))
        win = (slice(r0, r1), slice(c0, c1))
        assert np.array_equal(amap.labels_at(win), labels[win])
        assert np.array_equal(amap.cortex_at(win), amap.cortex[win])
        assert np.array_equal(amap.joint_labels_at(win), joints[win])
        np.testing.assert_allclose(amap.distance_to_bone_mm_at(win), dist[win], atol=1e-4)
    # the film window of a grid box holds exactly the film pixels of that box
    box = (slice(10, 20), slice(5, 30))
    rows, cols = amap.film_window(box)
    marked = np.zeros(amap.grid_labels.shape, np.uint8)
    marked[box] = 1
    film = cv2.resize(marked, size, interpolation=cv2.INTER_NEAREST)
    rr, cc = np.nonzero(film)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (
        rr.min(),
        rr.max() + 1,
        cc.min(),
        cc.max() + 1,
    )


def test_map_at_film_resolution_serves_its_arrays() -> None:
    from calcimg.anatomy import AnatomyMap

    labels = np.ones((5, 7), np.uint8)
    amap = AnatomyMap.from_arrays(
        labels=labels,
        cortex=np.zeros((5, 7), bool),
        joint_labels=np.zeros((5, 7), np.int32),
        distance_to_bone_mm=np.full((5, 7), np.inf, np.float32),
        joints=(),
        confounders=(),
    )
    assert amap.shape == (5, 7)
    assert amap.labels is labels
    assert np.isinf(amap.distance_to_bone_mm_at((slice(1, 3), slice(0, 9)))).all()
    with pytest.raises(ValueError, match=r"grid_cortex has shape \(4, 7\); expected"):
        dataclasses.replace(amap, grid_cortex=np.zeros((4, 7), bool))


# --- foreign bodies: markers, text and metal (issue #4) ---


def _confounders_on(
    path: Path, bone_method: str = "threshold"
) -> tuple[list[Confounder], np.ndarray]:
    from calcimg.ingest import read_radiograph

    if not path.is_file():
        pytest.skip(f"{path} is not available (shared DICOM corpus)")
    amap = map_anatomy(read_radiograph(path), params=AnatomyParams(bone_method=bone_method))
    return list(amap.confounders), amap.labels


def _at(conf: list[Confounder], r: int, c: int) -> list[str]:
    return [x.kind for x in conf if x.bbox[0] <= r < x.bbox[2] and x.bbox[1] <= c < x.bbox[3]]


DENTAL = SHARED_DICOM / "radiographs" / "CR-ModalitySequenceLUT.dcm"


def test_dental_panoramic_lists_the_r_marker_and_the_fillings_not_the_field_edge() -> None:
    conf, labels = _confounders_on(DENTAL)
    # the lead "R" bottom-left (rows ~1425-1485, cols ~105-150): one marker
    assert _at(conf, 1455, 125) == ["marker"]
    # the amalgam fillings of the molars (rows ~950-1250, cols 550-1450) are metal
    # and never soft tissue
    fillings = [x for x in conf if x.kind == "metal" and x.bbox[0] >= 950 and x.bbox[2] <= 1250]
    assert fillings and all(x.bbox[1] >= 550 and x.bbox[3] <= 1450 for x in fillings)
    assert labels[1197, 1211] == Region.FOREIGN
    # the bright rim along the top of the exposed field (row ~623) is no object
    assert not [x for x in conf if x.kind != "collimation" and x.bbox[0] < 660]


@pytest.mark.parametrize("method", ["threshold", "edges"])
def test_rg3_marker_is_a_marker_and_no_bone_is_metal(method: str) -> None:
    from realdata import pydicom_testfile

    conf, labels = _confounders_on(Path(pydicom_testfile("RG3_UNCR.dcm")), method)
    # the lead "R" right of the ankle (rows ~1390-1470, cols ~1150-1215), beside the
    # unexposed side band (its collimation box reaches the marker's grey square)
    assert [k for k in _at(conf, 1430, 1185) if k != "collimation"] == ["marker"]
    assert (labels[1400:1460, 1160:1210] == Region.FOREIGN).mean() > 0.5
    # the film holds no metal: the dense tarsal bones and the top edge are not
    assert [x.kind for x in conf if x.kind != "collimation"] == ["marker"]


def test_chest_corner_pixels_and_edge_specks_are_not_listed() -> None:
    conf, _ = _confounders_on(SHARED_DICOM / "radiographs" / "CR-MONO1-10-chest.dcm")
    # single bright pixels in the film's corners and specks along its bottom edge
    assert [x for x in conf if x.kind != "collimation"] == []


def _lettered_phantom() -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """The 0.2 mm phantom with a lead "L" over the air beside the limb and two lines of
    burned-in text (full white) in the top-left corner; returns pixels and centres."""
    import cv2

    ph = make_phantom(0.2)
    px = ph.radiograph.pixels.copy()
    top = float(px.max()) * 1.6
    canvas = np.zeros(px.shape, np.uint8)
    cv2.putText(canvas, "L", (20, 420), cv2.FONT_HERSHEY_SIMPLEX, 1.8, 1, 8)
    px[canvas > 0] = float(px.max()) * 1.3
    text = np.zeros(px.shape, np.uint8)
    cv2.putText(text, "KNEE AP", (15, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 1, 2)
    cv2.putText(text, "SUPINE", (15, 70), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 1, 2)
    px[text > 0] = top
    return px, {"marker": (400, 40), "text": (30, 60)}


def test_lead_letter_and_burned_in_text_are_one_entry_each() -> None:
    ph = make_phantom(0.2)
    px, centres = _lettered_phantom()
    rg = dataclasses.replace(ph.radiograph, pixels=px, value_range=(0.0, float(px.max())))
    amap = map_anatomy(rg, params=AnatomyParams())
    conf = list(amap.confounders)
    assert sorted(x.kind for x in conf) == ["marker", "text"]
    for kind, (r, c) in centres.items():
        assert _at(conf, r, c) == [kind]
        assert amap.labels[r - 3 : r + 4, c - 3 : c + 4].max() == Region.FOREIGN


def test_saturated_side_band_beyond_the_collimation_search_is_background() -> None:
    # pydicom-data's RG3: unexposed bands at the film's maximum along both long sides,
    # wider than the 15 % the collimation search looks in, with a blurred edge
    ph = make_phantom(0.2)
    px = ph.radiograph.pixels.copy()
    cols = px.shape[1]
    edge = int(cols * 0.75)  # 25 % of the width, over the body's edge
    px[:, edge:] = 4095.0
    ramp = 15  # 3 mm penumbra falling inwards from the band
    for i in range(ramp):
        c = edge - 1 - i
        px[:, c] = np.maximum(px[:, c], 4095.0 - (i + 1) * (4095.0 - 2000.0) / ramp)
    # a saturated lead square touching the band is not band
    px[200:240, edge - 40 : edge] = 4095.0
    amap = map_anatomy(dataclasses.replace(ph.radiograph, pixels=px), params=AnatomyParams())
    labels = amap.labels
    assert "collimation" in {c.kind for c in amap.confounders}
    assert (labels[:, edge - ramp :] == Region.BACKGROUND).mean() > 0.95
    assert (labels[205:235, edge - 35 : edge - 20] == Region.BACKGROUND).mean() < 0.5
    # the bone in the exposed field is still found
    bone = labels == Region.BONE
    assert _iou(bone[:, : edge - ramp], ph.bone[:, : edge - ramp]) > 0.75


def test_bone_step_follows_the_bone_margin_not_the_soft_tissue_median() -> None:
    # a thick soft-tissue bulge far from the bone raises the soft-tissue median; the
    # cortex step at the bone's margin, which sets the detector's density scale, stays
    ph = make_phantom(0.2)
    px = ph.radiograph.pixels
    rows, cols = px.shape
    cc = (np.arange(cols) + 0.5) * 0.2
    bulge = 250.0 * np.exp(-(((cc - 25.0) / 8.0) ** 2))  # 25 mm from the bone's axis
    bulged = dataclasses.replace(ph.radiograph, pixels=(px + bulge[None, :]).astype(np.float32))
    a = map_anatomy(ph.radiograph, params=AnatomyParams())
    b = map_anatomy(bulged, params=AnatomyParams())
    assert a.bone_step is not None and b.bone_step is not None and a.bone_step > 0
    assert abs(b.bone_step - a.bone_step) < 0.1 * a.bone_step


def test_a_dense_lead_block_does_not_take_the_bone_threshold() -> None:
    # a saturated lead block over 3 % of the body: a two-class split of the residual puts
    # it alone in the upper class, and the bone below the threshold
    ph = make_phantom(0.2)
    px = ph.radiograph.pixels.copy()
    px[100:300, 100:140] = 4095.0  # 40 x 8 mm in the soft tissue left of the shaft
    film = dataclasses.replace(ph.radiograph, pixels=px)
    amap = map_anatomy(film, params=AnatomyParams())
    assert _iou(amap.labels == Region.BONE, ph.bone) > 0.9
    assert (amap.labels[110:290, 105:135] == Region.BONE).mean() < 0.05
    old = map_anatomy(film, params=AnatomyParams(bone_min_share=0.0)).labels
    assert _iou(old == Region.BONE, ph.bone) < 0.1


def test_bright_collimation_bands_do_not_raise_the_air_threshold() -> None:
    # unexposed film at the top and bottom (a third of the film, brighter than bone): a
    # three-class split over the whole film took the bands as a class of their own and put
    # the air | tissue split inside the thin tissue at the skin (2 mm narrower a limb;
    # fingertip deposits beside a blade went to air)
    ph = make_phantom(0.2, size_mm=(180.0, 110.0))
    ref = map_anatomy(ph.radiograph, params=AnatomyParams()).labels > 0
    px = ph.radiograph.pixels.copy()
    rows = px.shape[0]
    band = rows // 6
    px[:band] = 4000.0
    px[-band:] = 4000.0
    labels = map_anatomy(
        dataclasses.replace(ph.radiograph, pixels=px), params=AnatomyParams()
    ).labels
    assert (labels[:band] == Region.BACKGROUND).mean() > 0.95
    mid = rows // 2
    width_mm = float(np.count_nonzero(labels[mid] > 0)) * 0.2
    assert abs(width_mm - float(np.count_nonzero(ref[mid])) * 0.2) <= 0.4


def test_air_inside_the_body_is_body() -> None:
    # a lung, or gas, inside the body: as dark as the air outside it, but a hole of the
    # body away from any collimation, so it stays body (only air at the exposed field's
    # edge, closed in by a blade's penumbra, is left out)
    ph = make_phantom(0.2)
    soft_only = make_phantom(0.2, bone=False)
    px = ph.radiograph.pixels.copy()
    rows, cols = px.shape
    rr = (np.arange(rows) + 0.5)[:, None] * 0.2
    cc = (np.arange(cols) + 0.5)[None, :] * 0.2
    lung = ((rr - 60.0) / 15.0) ** 2 + ((cc - 27.0) / 6.0) ** 2 <= 1.0  # left of the bone
    air = float(np.median(soft_only.radiograph.pixels[~soft_only.body]))
    px[lung] = air
    labels = map_anatomy(
        dataclasses.replace(ph.radiograph, pixels=px), params=AnatomyParams()
    ).labels
    assert (labels[lung] != Region.BACKGROUND).mean() > 0.95


_AIR, _SOFT, _BONE = 300.0, 1500.0, 2100.0
"""Levels of the drawn slab films."""


def _slab(sp: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 120 x 110 mm film at ``sp`` mm: air with a slab of soft tissue between columns
    10 and 100 mm. Returns the rows' and columns' centres in mm (broadcastable) and the
    pixels."""
    rows, cols = round(120.0 / sp), round(110.0 / sp)
    rr = (np.arange(rows) + 0.5)[:, None] * sp
    cc = (np.arange(cols) + 0.5)[None, :] * sp
    px = np.full((rows, cols), _AIR)
    px[:, (cc[0] >= 10.0) & (cc[0] <= 100.0)] = _SOFT
    return rr, cc, px


def _with_slit(
    value: str, size_mm: tuple[float, float], notches: bool = False, lens: bool = False
) -> tuple[Radiograph, np.ndarray]:
    """A flat slab of soft tissue (air at its sides) with a 30 x 80 mm bone, and a hole
    through the bone (a band ``size_mm`` (rows, cols) centred at 60, 55 mm) as dense as
    the soft tissue, as air, or a third of the way from soft tissue to bone.

    ``notches``: two soft-tissue wedges 6 mm wide cut into the bone, one from its top
    edge along the slit's axis (rows 20-34 mm; the bones diverging beyond their joint)
    and one from its left edge across it (columns 40-52 mm, at row 30 mm).

    ``lens``: the hole is a rhombus ``size_mm`` long and wide instead of a band (widest
    in its middle, pointed at its ends)."""
    sp = 0.2
    rr, cc, px = _slab(sp)
    air, soft, bone = _AIR, _SOFT, _BONE
    px[(np.abs(rr - 60.0) <= 40.0) & (np.abs(cc - 55.0) <= 15.0)] = bone
    slit = (np.abs(rr - 60.0) <= size_mm[0] / 2) & (np.abs(cc - 55.0) <= size_mm[1] / 2)
    if lens:
        slit &= np.abs(cc - 55.0) <= size_mm[1] / 2 * (1.0 - np.abs(rr - 60.0) / (size_mm[0] / 2))
    px[slit] = {"soft": soft, "air": air, "medulla": soft + (bone - soft) / 3}[value]
    if notches:
        px[(rr >= 19.0) & (rr <= 34.0) & (np.abs(cc - 55.0) <= 3.0 * (34.0 - rr) / 14.0)] = soft
        px[(cc >= 39.0) & (cc <= 52.0) & (np.abs(rr - 30.0) <= 3.0 * (52.0 - cc) / 12.0)] = soft
    px += np.random.default_rng(1).normal(0.0, 4.0, px.shape)
    return film_of(px, sp), slit


def test_a_soft_tissue_slit_enclosed_by_bone_is_a_joint_space() -> None:
    # two bones that overlap above and below their joint in projection (a pubic
    # symphysis) enclose the joint: one bone component, no gap between two; the slit
    # of soft-tissue density between them is the joint space, as between two bones
    film, slit = _with_slit("soft", (20.0, 5.0))
    amap = map_anatomy(film, params=AnatomyParams())
    inner = cv2.erode(slit.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert (amap.labels[inner] == Region.JOINT_SPACE).mean() > 0.9
    assert len(amap.joints) == 1
    # off, the slit is a hole in bone, filled (the bone model's second opinion makes no
    # holes in bone)
    off = map_anatomy(film, params=AnatomyParams(joint_slit_elongation=0.0))
    assert (off.labels[inner] == Region.BONE).mean() > 0.9 and not off.joints


def test_a_notch_on_a_slit_joints_axis_continues_the_joint() -> None:
    # beyond their joint the two overlapping bones diverge: the notch between them, on
    # the slit's axis, is the same joint space (a symphysis line lies there); a notch
    # across the axis is not
    film, _slit = _with_slit("soft", (40.0, 5.0), notches=True)
    sp = 0.2
    rr = (np.arange(film.shape[0]) + 0.5)[:, None] * sp
    cc = (np.arange(film.shape[1]) + 0.5)[None, :] * sp
    axial = (np.abs(cc - 55.0) <= 0.5) & (rr >= 23.0) & (rr <= 29.0)
    across = (np.abs(rr - 30.0) <= 1.0) & (cc >= 46.0) & (cc <= 49.0)
    amap = map_anatomy(film, params=AnatomyParams())
    assert (amap.labels[axial] == Region.JOINT_SPACE).mean() > 0.9
    assert not (amap.labels[across] == Region.JOINT_SPACE).any()
    off = map_anatomy(film, params=AnatomyParams(joint_slit_reach=0.0))
    assert not (off.labels[axial] == Region.JOINT_SPACE).any()


def test_a_slit_wider_than_the_joint_gap_in_its_middle_is_one_joint() -> None:
    # the joint-gap closing (8 mm) reaches only the pointed ends of a 10 mm wide lens:
    # the whole lens is the joint space, not half of it and no joint
    film, slit = _with_slit("soft", (30.0, 10.0), lens=True)
    inner = cv2.erode(slit.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    amap = map_anatomy(film, params=AnatomyParams())
    assert (amap.labels[inner] == Region.JOINT_SPACE).mean() > 0.9
    assert len(amap.joints) == 1
    off = map_anatomy(film, params=AnatomyParams(joint_slit_whole=False))
    assert not (off.labels[inner] == Region.JOINT_SPACE).any()
    # twice as wide (gas over a bone, 16 mm): no joint, whatever the closing reached
    wide, hole = _with_slit("soft", (48.0, 16.0), lens=True)
    core = cv2.erode(hole.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert not (map_anatomy(wide, params=AnatomyParams()).labels[core] == Region.JOINT_SPACE).any()


def _block_beside_bone(gap_mm: float) -> tuple[Radiograph, np.ndarray]:
    """A slab of soft tissue with two 50 x 45 mm bones 10 mm apart (a knee's femur and
    tibia) and a 10 x 6 mm block as dense as bone in the gap, ``gap_mm`` below the upper
    bone; blurred (sigma 0.5 mm), so that the threshold bridges a narrow gap."""
    sp = 0.2
    rr, cc, px = _slab(sp)
    bone = _BONE
    bones = ((rr >= 10.0) & (rr <= 55.0)) | ((rr >= 65.0) & (rr <= 110.0))
    px[bones & (np.abs(cc - 55.0) <= 25.0)] = bone
    block = (rr >= 55.0 + gap_mm) & (rr <= 61.0 + gap_mm) & (np.abs(cc - 50.0) <= 5.0)
    px[block] = bone
    px = cv2.GaussianBlur(px, (0, 0), 0.5 / sp)
    px += np.random.default_rng(1).normal(0.0, 4.0, px.shape)
    return film_of(px, sp), block


def test_a_block_joined_to_a_bone_across_a_dark_gap_is_not_bone() -> None:
    # the blur lifts a 0.5 mm gap above the bone threshold: without the valley cut the
    # block is part of the upper bone; with it, a component of 60 mm2, too small for bone
    # (the drawn bones are flat slabs, no cortex nor trabeculae: the bone model's second
    # opinion, which has not seen such bones, is off)
    film, block = _block_beside_bone(0.5)
    inner = cv2.erode(block.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    labels = map_anatomy(film, params=AnatomyParams(bone_model_soft=0.0)).labels
    assert (labels[inner] == Region.BONE).mean() < 0.05
    for r_mm in (30.0, 90.0):  # both bones stay bone
        assert labels[round(r_mm / 0.2), round(55.0 / 0.2)] == Region.BONE
    off = map_anatomy(film, params=AnatomyParams(bone_valley_mm=0.0, bone_model_soft=0.0)).labels
    assert (off[inner] == Region.BONE).mean() > 0.95


@pytest.mark.parametrize(
    ("value", "size_mm"),
    [("soft", (6.0, 5.0)), ("air", (20.0, 5.0)), ("medulla", (20.0, 5.0))],
    ids=["round", "air", "denser"],
)
def test_round_air_or_dense_holes_in_bone_stay_bone(
    value: str, size_mm: tuple[float, float]
) -> None:
    # a round pocket, gas, or a medullary pocket below the bone threshold is no joint
    film, slit = _with_slit(value, size_mm)
    amap = map_anatomy(film, params=AnatomyParams())
    inner = cv2.erode(slit.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert (amap.labels[inner] == Region.BONE).mean() > 0.9
    assert not amap.joints


def _haloed_limb(halo_depth: float) -> tuple[Radiograph, np.ndarray]:
    """A limb whose skin is a sharp step, on air that workstation equalisation darkens in
    a smooth halo beside it (dev synth_4000 under a flatter tone curve: air at 0.43 of
    the range falls to 0.14 at the skin over about 20 mm; tissue 0.66-0.8)."""
    sp = 0.5
    rows, cols = 240, 440
    c = (np.arange(cols) + 0.5) * sp
    body_cols = (c >= 70.0) & (c <= 150.0)
    d = np.where(c < 70.0, 70.0 - c, np.where(c > 150.0, c - 150.0, 0.0))
    level = np.where(body_cols, 0.62 + 0.18 * np.sin(np.pi * (c - 70.0) / 80.0), 0.43)
    level = level - np.where(body_cols, 0.0, halo_depth * np.exp(-d / 15.0))
    bone_cols = (c >= 100.0) & (c <= 120.0)
    px = np.tile(level, (rows, 1)) + 0.12 * bone_cols[None, :]
    rng = np.random.default_rng(3)
    px = (px + rng.normal(0.0, 0.004, px.shape)) * 4095.0
    return film_of(np.clip(px, 0, 4095), sp), np.tile(body_cols, (rows, 1))


def test_an_equalisation_halo_beside_the_body_is_air_not_the_air_threshold() -> None:
    # dev synth_4000 with a flatter tone curve: the halo was the lowest of the three
    # classes, the air went with the tissue and the whole hand was mapped as bone
    rg, body = _haloed_limb(0.35)
    labels = map_anatomy(rg, params=AnatomyParams()).labels
    assert _iou(labels > 0, body) > 0.95
    assert (labels[:, 20:100] == Region.BACKGROUND).mean() > 0.95  # the air plateau
    old = map_anatomy(rg, params=AnatomyParams(body_edge_ratio=0.0)).labels
    assert _iou(old > 0, body) < 0.6  # what the three-class split alone did
    # without a halo the split is the skin already, and stays there
    rg0, body0 = _haloed_limb(0.0)
    assert _iou(map_anatomy(rg0, params=AnatomyParams()).labels > 0, body0) > 0.95


def _bone_against_truth(name: str, params: AnatomyParams) -> tuple[float, float, int]:
    """(precision, recall) of the map's bone against the bundled film's truth anatomy,
    and the lesion pixels it maps as bone."""
    path = SAMPLES / f"{name}.dcm"
    mapped = map_anatomy(read_radiograph(str(path)), params=params).labels == Region.BONE
    truth = cv2.imread(str(path.with_suffix(".anatomy.png")), cv2.IMREAD_UNCHANGED)
    lesions = cv2.imread(str(path.with_suffix(".mask.png")), cv2.IMREAD_UNCHANGED) > 0
    both = int((mapped & (truth == Region.BONE)).sum())
    return (
        both / max(int(mapped.sum()), 1),
        both / max(int((truth == Region.BONE).sum()), 1),
        int((mapped & lesions).sum()),
    )


@pytest.mark.parametrize("name", ["synth_0005", "synth_0008"])
def test_soft_tissue_over_the_threshold_leaves_bone_by_the_bone_model(name: str) -> None:
    # a shoulder's deltoid region and an elbow's forearm muscles are thick enough to pass
    # the threshold, with a deposit inside; the learned bone probability takes them back
    # (measured: precision 0.71 -> 0.92 and 0.78 -> 0.98; lesion pixels in bone 636 ->
    # 0 and 1809 -> 40; recall unchanged to 0.001)
    prec_off, rec_off, les_off = _bone_against_truth(name, AnatomyParams(bone_model_soft=0.0))
    prec, rec, les = _bone_against_truth(name, AnatomyParams())
    assert prec_off < 0.8
    assert prec > 0.9
    assert rec > rec_off - 0.01
    assert les <= 0.1 * les_off


def test_a_missing_bone_model_names_the_anatomy_parameter() -> None:
    film, _ = _block_beside_bone(0.5)
    with pytest.raises(ConfigError, match=r"anatomy\.bone_model"):
        map_anatomy(film, params=AnatomyParams(bone_model="no_such_trees.json"))
