"""Tests of calcimg.describe: descriptors on drawn shapes of known mm size, patterns."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi

from calcimg.anatomy import AnatomyMap, Joint, Region
from calcimg.config import load_config
from calcimg.describe import FEATURES, DescribeParams, Descriptions, describe
from calcimg.detect import Detection, Detections
from calcimg.errors import ConfigError
from calcimg.radiograph import Radiograph, SpacingSource
from calcimg.result import Pattern
from phantoms import film_of

BG = 1000.0
CALC = 1600.0
CORTEX = 2000.0


def _radiograph(img: np.ndarray, spacing: float, seed: int = 0) -> Radiograph:
    rng = np.random.default_rng(seed)
    noisy = img + rng.normal(0, 10, img.shape)
    return film_of(noisy, spacing)


def _anatomy(
    shape: tuple[int, int],
    spacing: float,
    bone: np.ndarray | None = None,
    joint: np.ndarray | None = None,
) -> AnatomyMap:
    labels = np.full(shape, np.uint8(Region.SOFT_TISSUE), np.uint8)
    cortex = np.zeros(shape, bool)
    dist = np.full(shape, np.inf, np.float32)
    if bone is not None:
        labels[bone] = np.uint8(Region.BONE)
        cortex = bone & ~ndi.binary_erosion(bone, iterations=max(1, round(1.5 / spacing)))
        dist = (ndi.distance_transform_edt(~bone) * spacing).astype(np.float32)
    joint_labels = np.zeros(shape, np.int32)
    joints: tuple[Joint, ...] = ()
    if joint is not None:
        labels[joint] = np.uint8(Region.JOINT_SPACE)
        joint_labels[joint] = 1
        rr, cc = np.nonzero(joint)
        joints = (
            Joint(
                label=1,
                name="knee",
                centroid_rc=(float(rr.mean()), float(cc.mean())),
                bbox=(int(rr.min()), int(cc.min()), int(rr.max()) + 1, int(cc.max()) + 1),
            ),
        )
    return AnatomyMap.from_arrays(
        labels=labels,
        cortex=cortex,
        joint_labels=joint_labels,
        joints=joints,
        confounders=(),
        distance_to_bone_mm=dist,
    )


def _detections(mask: np.ndarray) -> Detections:
    """One detection per call: the connected components of ``mask`` are its particles."""
    lab, _ = ndi.label(mask, structure=np.ones((3, 3)))
    rr, cc = np.nonzero(mask)
    r0, c0, r1, c1 = rr.min(), cc.min(), rr.max() + 1, cc.max() + 1
    return Detections(
        items=(
            Detection(
                id=1,
                bbox=(int(r0), int(c0), int(r1), int(c1)),
                particles=lab[r0:r1, c0:c1].astype(np.int32),
                confidence=1.0,
            ),
        )
    )


@pytest.fixture(params=["prior", "shipped"])
def model(request: pytest.FixtureRequest) -> DescribeParams:
    """The hand-set prior weights (code defaults) and the shipped fitted weights."""
    return DescribeParams() if request.param == "prior" else load_config().describe


def _disk(shape: tuple[int, int], centre_rc: tuple[float, float], radius_px: float) -> np.ndarray:
    rr, cc = np.ogrid[: shape[0], : shape[1]]
    return (rr - centre_rc[0]) ** 2 + (cc - centre_rc[1]) ** 2 <= radius_px**2


def _run(
    mask: np.ndarray,
    img: np.ndarray,
    spacing: float,
    anatomy: AnatomyMap | None = None,
    params: DescribeParams | None = None,
) -> Descriptions:
    rg = _radiograph(img, spacing)
    am = anatomy or _anatomy(mask.shape, spacing)
    return describe(rg, am, _detections(mask), params=params or DescribeParams())


@pytest.mark.parametrize("spacing", [0.1, 0.2], ids=["0.1mm", "0.2mm"])
def test_disk_diameter_in_mm(spacing: float) -> None:
    n = round(20 / spacing)
    mask = _disk((n, n), (n / 2, n / 2), 2.0 / spacing)
    img = np.where(mask, CALC, BG)
    d = _run(mask, img, spacing).items[0].descriptors
    assert d["n_particles"] == 1
    assert d["particle_diameter_mean_mm"] == pytest.approx(4.0, abs=1.01 * spacing)
    assert d["extent_mm"] == pytest.approx(4.0, abs=1.01 * spacing)
    assert d["lucent_center"] is False
    assert d["parallel_pair"] is False


def _lines(
    spacing: float,
    gap_mm: float,
    thick_mm: float = 0.6,
    length_mm: float = 60.0,
    curve: bool = False,
) -> np.ndarray:
    n_r = round(30 / spacing)
    n_c = round((length_mm + 20) / spacing)
    mask = np.zeros((n_r, n_c), np.uint8)
    c = np.arange(round(10 / spacing), round((10 + length_mm) / spacing))
    bend = (np.sin(c / len(c) * math.pi) * 4 / spacing) if curve else np.zeros(len(c))
    for off in (-gap_mm / 2, gap_mm / 2):
        r = (n_r / 2 + off / spacing + bend).round().astype(np.int32)
        pts = np.column_stack([c, r]).astype(np.int32)
        cv2.polylines(mask, [pts], False, 1, thickness=max(1, round(thick_mm / spacing)))
    return mask.astype(bool)


@pytest.mark.parametrize("curve", [False, True], ids=["straight", "curved"])
def test_parallel_lines_are_a_tram_track(curve: bool, model: DescribeParams) -> None:
    mask = _lines(0.15, 3.0, curve=curve)
    img = np.where(mask, CALC, BG)
    item = _run(mask, img, 0.15, params=model).items[0]
    d = item.descriptors
    assert d["n_particles"] == 2
    assert d["parallel_pair"] is True
    assert d["line_spacing_mm"] == pytest.approx(3.0, abs=0.3)
    assert d["line_thickness_mm"] == pytest.approx(0.6, abs=0.2)
    assert d["linearity"] > 0.8
    assert item.pattern is Pattern.VASCULAR
    assert any("tram-track" in s for s in item.drivers)


@pytest.mark.parametrize(
    ("spacing", "gap_mm"), [(0.1, 5.5), (0.2, 2.2)], ids=["wide-0.1mm", "narrow-0.2mm"]
)
def test_tram_track_spacing_across_the_range(spacing: float, gap_mm: float) -> None:
    mask = _lines(spacing, gap_mm, thick_mm=0.5)
    d = _run(mask, np.where(mask, CALC, BG), spacing).items[0].descriptors
    assert d["parallel_pair"] is True
    assert d["line_spacing_mm"] == pytest.approx(gap_mm, abs=max(0.3, spacing * 1.5))


def test_dashed_tram_track_is_still_a_pair() -> None:
    mask = _lines(0.15, 3.5)
    cols = np.arange(mask.shape[1])
    mask[:, (cols // 40) % 4 == 3] = False  # gaps of 6 mm every 24 mm
    d = _run(mask, np.where(mask, CALC, BG), 0.15).items[0].descriptors
    assert d["n_particles"] >= 6
    assert d["parallel_pair"] is True
    assert d["line_spacing_mm"] == pytest.approx(3.5, abs=0.3)


def _tube(spacing: float, radius_mm: float, wall_mm: float, length_mm: float = 50.0):
    """A calcified tube seen side-on: projected wall density, mask filling the lumen."""
    n_r = round(20 / spacing)
    n_c = round((length_mm + 20) / spacing)
    rr = (np.arange(n_r)[:, None] - n_r / 2) * spacing
    cc = np.arange(n_c)[None, :] * spacing
    along = (cc >= 10) & (cc <= 10 + length_mm)
    d = np.abs(rr)

    def chord(r: float) -> np.ndarray:
        return 2 * np.sqrt(np.clip(r * r - d * d, 0, None))

    prof = (chord(radius_mm) - chord(radius_mm - wall_mm)) * along
    prof = prof / prof.max()
    img = BG + (CALC - BG) * prof
    return prof > 0.3, img


def test_filled_tube_is_a_tram_track(model: DescribeParams) -> None:
    s = 0.15
    mask, img = _tube(s, radius_mm=2.0, wall_mm=0.5)
    item = _run(mask, img, s, params=model).items[0]
    d = item.descriptors
    assert d["n_particles"] == 1
    assert d["n_tubes"] == 1
    assert d["parallel_pair"] is True
    # wall centres are 2 * radius - wall = 3.5 mm apart
    assert d["line_spacing_mm"] == pytest.approx(3.5, abs=0.4)
    assert item.pattern is Pattern.VASCULAR
    assert any("tram-track" in t for t in item.drivers)


def test_filled_tube_with_lumen_holes_in_its_mask_is_a_tram_track(model: DescribeParams) -> None:
    # a detector's mask of a pipe-stem under edge enhancement: both walls and the lumen,
    # with pockets of the darker lumen left out (dev unsharp synth_4017). The mask's own
    # skeleton then runs along each wall and around every pocket; the band's centre line
    # is the filled particle's skeleton
    s = 0.15
    mask, img = _tube(s, radius_mm=2.0, wall_mm=0.5)
    mid = mask.shape[0] // 2
    for c in range(round(14 / s), round(56 / s), round(4 / s)):
        mask[mid - 3 : mid + 4, c : c + round(2.5 / s)] = False
    assert ndi.label(mask, structure=np.ones((3, 3)))[1] == 1
    item = _run(mask, img, s, params=model).items[0]
    d = item.descriptors
    assert d["n_tubes"] == 1
    assert d["parallel_pair"] is True
    assert d["line_spacing_mm"] == pytest.approx(3.5, abs=0.4)
    assert item.pattern is Pattern.VASCULAR


def test_solid_band_is_not_a_tube() -> None:
    s = 0.15
    mask = np.zeros((130, 460), bool)
    mask[50:80, 60:400] = True  # 4.5 mm wide, 51 mm long, brightest in the middle
    dist = ndi.distance_transform_edt(mask)
    img = BG + (CALC - BG) * np.minimum(dist / 8, 1.0)
    d = _run(mask, img, s).items[0].descriptors
    assert d["n_tubes"] == 0
    assert d["parallel_pair"] is False


def test_lines_too_far_apart_are_not_a_pair() -> None:
    mask = _lines(0.15, 12.0)
    d = _run(mask, np.where(mask, CALC, BG), 0.15).items[0].descriptors
    assert d["parallel_pair"] is False
    assert d["line_spacing_mm"] is None


def test_ring_has_a_lucent_centre() -> None:
    s = 0.1
    n = 100
    outer = _disk((n, n), (50, 50), 2.0 / s)
    inner = _disk((n, n), (50, 50), 1.2 / s)
    ring = outer & ~inner
    # the mask covers the whole body; the lucency is in the intensities
    img = np.where(ring, CALC, np.where(inner, BG + 150, BG))
    d = _run(outer, img, s).items[0].descriptors
    assert d["lucent_center"] is True
    # and a ring drawn as a mask with a hole
    d2 = _run(ring, img, s).items[0].descriptors
    assert d2["lucent_center"] is True


def _ring_image(
    shape: tuple[int, int], centres: list[tuple[int, int]], r_out: float, r_in: float
) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros(shape, bool)
    img = np.full(shape, BG)
    for c in centres:
        outer = _disk(shape, c, r_out)
        inner = _disk(shape, c, r_in)
        mask |= outer
        img[outer & ~inner] = CALC
        img[inner] = BG + 100
    return mask, img


def test_phlebolith_is_vascular(model: DescribeParams) -> None:
    s = 0.15
    mask, img = _ring_image((200, 200), [(100, 100)], 3.5 / 2 / s, 1.0 / s)
    item = _run(mask, img, s, params=model).items[0]
    assert item.descriptors["lucent_center"] is True
    assert item.pattern is Pattern.VASCULAR
    assert any("lucent" in d for d in item.drivers)


def _rings_in_a_joint(
    centres: list[tuple[int, int]], model: DescribeParams, s: float = 0.15
) -> Descriptions:
    """3 mm ring bodies at ``centres`` in the joint space between two bones (500 x 500)."""
    shape = (500, 500)
    bone = np.zeros(shape, bool)
    bone[:150] = True
    bone[350:] = True
    joint = np.zeros(shape, bool)
    joint[150:350, 50:450] = True
    mask, img = _ring_image(shape, centres, 3.0 / s, 1.8 / s)
    img = np.where(bone, CORTEX, img)
    return _run(mask, img, s, anatomy=_anatomy(shape, s, bone=bone, joint=joint), params=model)


def test_ring_and_arc_loose_bodies_in_a_joint_are_globular(model: DescribeParams) -> None:
    centres = [(200, 150), (210, 250), (290, 200), (300, 330), (230, 380)]
    item = _rings_in_a_joint(centres, model).items[0]
    d = item.descriptors
    assert d["n_particles"] == 5
    assert d["ring_and_arc"] is True
    assert d["similar_sized"] is True
    assert item.location.intra_articular is True
    assert item.pattern is Pattern.GLOBULAR_PERIARTICULAR


def test_two_ring_bodies_are_ring_and_arc_one_is_not(model: DescribeParams) -> None:
    # the detector often splits a joint's loose bodies into findings of one or two bodies
    # (docs/patterns.md, session 21): two rings are already ring-and-arc, one lucent body
    # is a phlebolith's shape and stays a lucent centre only
    centres = [(220, 180), (280, 260)]
    item = _rings_in_a_joint(centres, model).items[0]
    assert item.descriptors["n_particles"] == 2
    assert item.descriptors["ring_and_arc"] is True
    assert item.pattern is Pattern.GLOBULAR_PERIARTICULAR
    single = _rings_in_a_joint(centres[:1], model).items[0]
    assert single.descriptors["lucent_center"] is True
    assert single.descriptors["ring_and_arc"] is False


def test_loose_bodies_against_the_bone_beside_the_joint_are_intra_articular() -> None:
    s = 0.15
    shape = (500, 500)
    bone = np.zeros(shape, bool)
    bone[:, :200] = True  # the bone's surface is column 200
    joint = np.zeros(shape, bool)
    joint[240:260, 100:200] = True
    bone[240:260] = False
    # 4 mm bodies 9 pixels (1.35 mm) off the bone, 5-20 mm above and below the joint space
    centres = [(190, 221), (140, 221), (310, 221), (360, 221)]
    mask, img = _ring_image(shape, centres, 2.0 / s, 1.2 / s)
    img = np.where(bone, CORTEX, img)
    item = _run(mask, img, s, anatomy=_anatomy(shape, s, bone=bone, joint=joint)).items[0]
    d = item.descriptors
    assert d["joint_space_overlap"] == 0.0
    assert d["particle_bone_distance_mm"] == pytest.approx(1.35, abs=0.1)
    assert item.location.intra_articular is True
    # one nodule in the same place is not a cluster of loose bodies: not intra-articular
    one, one_img = _ring_image(shape, centres[:1], 2.0 / s, 1.2 / s)
    one_img = np.where(bone, CORTEX, one_img)
    single = _run(one, one_img, s, anatomy=_anatomy(shape, s, bone=bone, joint=joint)).items[0]
    assert single.location.intra_articular is False
    # nearest: body edge (203, 213) to the joint space corner (240, 199)
    assert item.location.distance_to_joint_mm == pytest.approx(0.15 * math.hypot(37, 14), abs=0.5)


def test_lobulated_mass_beside_a_joint_is_globular_with_septa(model: DescribeParams) -> None:
    s = 0.2
    shape = (500, 500)
    bone = np.zeros(shape, bool)
    bone[:120] = True
    joint = np.zeros(shape, bool)
    joint[120:135, 50:450] = True
    mask = np.zeros(shape, bool)
    # globules 6-12 mm separated by 1 mm lucent septa, 10-40 mm from the joint
    for (r, c), rad_mm in zip(
        [(200, 200), (200, 262), (255, 230), (250, 170), (150, 250)],
        [6, 5, 5, 4, 3],
        strict=True,
    ):
        mask |= _disk(shape, (r, c), rad_mm / s)
    _, n = ndi.label(mask)
    img = np.where(bone, CORTEX, BG)
    img = np.where(mask, CALC + 200, img)
    item = _run(
        mask, img, s, anatomy=_anatomy(shape, s, bone=bone, joint=joint), params=model
    ).items[0]
    d = item.descriptors
    assert d["n_particles"] == n == 5
    assert d["septa"] is True
    assert item.location.intra_articular is False
    assert item.pattern is Pattern.GLOBULAR_PERIARTICULAR


def test_edge_only_mask_of_a_solid_body_is_not_a_ring() -> None:
    s = 0.1
    outer = _disk((100, 100), (50, 50), 2.0 / s)
    inner = _disk((100, 100), (50, 50), 1.2 / s)
    img = np.where(outer, CALC, BG)  # solid body, but the mask kept only its edge
    d = _run(outer & ~inner, img, s).items[0].descriptors
    assert d["lucent_center"] is False
    assert d["n_ring_or_arc"] == 0


def test_solid_disk_has_no_lucent_centre() -> None:
    s = 0.1
    mask = _disk((100, 100), (50, 50), 2.0 / s)
    dist = ndi.distance_transform_edt(mask)
    img = BG + (CALC - BG) * np.minimum(dist / 5, 1.0)  # brightest in the centre
    assert _run(mask, img, s).items[0].descriptors["lucent_center"] is False


def _speckles(n_speck: int, spacing: float = 0.15, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    size = round(50 / spacing)
    mask = np.zeros((size, size), bool)
    placed = 0
    while placed < n_speck:
        r, c = rng.integers(20, size - 20, 2)
        blob = _disk((size, size), (r, c), 0.5 / spacing)
        if (ndi.binary_dilation(blob, iterations=3) & mask).any():
            continue
        mask |= blob
        placed += 1
    return mask


def test_speckles_count_exactly_and_classify_as_finely_speckled(model: DescribeParams) -> None:
    mask = _speckles(30)
    item = _run(mask, np.where(mask, CALC, BG), 0.15, params=model).items[0]
    d = item.descriptors
    assert d["n_particles"] == 30
    assert d["particle_diameter_mean_mm"] == pytest.approx(1.0, abs=0.2)
    assert d["similar_sized"] is True
    assert d["solidity"] < 0.2
    assert item.pattern is Pattern.FINELY_SPECKLED


def test_amorphous_clump(model: DescribeParams) -> None:
    rng = np.random.default_rng(5)
    s = 0.15
    size = 200
    mask = np.zeros((size, size), bool)
    for _ in range(6):
        r, c = rng.integers(80, 120, 2)
        mask |= _disk((size, size), (r, c), rng.uniform(12, 25))
    # cloud-like: the density fades over ~1.5 mm at the margin (DOMAIN.md: ill-defined)
    cloud = ndi.gaussian_filter(mask.astype(float), 0.6 / s)
    img = BG + (CALC - BG) * cloud
    item = _run(cloud > 0.25, img, s, params=model).items[0]
    assert item.descriptors["n_particles"] == 1
    assert item.descriptors["margin_width_mm"] > 1.2
    assert item.pattern is Pattern.AMORPHOUS


def test_sharp_margin_is_narrower_than_a_cloud() -> None:
    s = 0.15
    disk = _disk((100, 100), (50, 50), 1.5 / s)
    sharp = _run(disk, np.where(disk, CALC, BG), s).items[0].descriptors
    soft_img = BG + (CALC - BG) * ndi.gaussian_filter(disk.astype(float), 0.6 / s)
    soft = _run(soft_img > BG + 0.3 * (CALC - BG), soft_img, s).items[0].descriptors
    assert sharp["margin_width_mm"] < 0.6
    assert soft["margin_width_mm"] > 2 * sharp["margin_width_mm"]


def test_chondral_line_inside_joint_space(model: DescribeParams) -> None:
    s = 0.15
    shape = (400, 400)
    bone = np.zeros(shape, bool)
    bone[:180] = True
    bone[230:] = True
    joint = np.zeros(shape, bool)
    joint[180:230, 50:350] = True
    mask = np.zeros(shape, bool)
    mask[190:196, 100:300] = True  # 0.9 mm thick, 30 mm long, 1.5 mm from the bone
    img = np.where(bone, CORTEX, BG)
    img = np.where(mask, CALC, img)
    am = _anatomy(shape, s, bone=bone, joint=joint)
    item = _run(mask, img, s, anatomy=am, params=model).items[0]
    assert item.location.intra_articular is True
    assert item.location.nearest_joint == "knee"
    assert item.location.distance_to_joint_mm == 0.0
    assert item.location.distance_to_bone_mm == pytest.approx(1.5, abs=0.2)
    assert item.descriptors["density_rel_cortex"] == pytest.approx(0.6, abs=0.05)
    assert item.descriptors["density_reference"] == "cortex_local"
    assert item.pattern is Pattern.CHONDRAL_LINE


def test_no_bone_density_is_none() -> None:
    mask = _disk((100, 100), (50, 50), 15)
    d = _run(mask, np.where(mask, CALC, BG), 0.15).items[0].descriptors
    assert d["density_rel_cortex"] is None
    assert d["density_reference"] == "none"
    assert d["cnr"] == pytest.approx((CALC - BG) / 10, rel=0.2)


def test_scores_sum_to_one_and_drivers_name_values() -> None:
    mask = _speckles(12, seed=9)
    item = _run(mask, np.where(mask, CALC, BG), 0.15).items[0]
    assert set(item.pattern_scores) == set(Pattern)
    assert sum(item.pattern_scores.values()) == pytest.approx(1.0, abs=1e-9)
    assert item.pattern_scores[item.pattern] == max(item.pattern_scores.values())
    assert item.drivers and any(ch.isdigit() for ch in " ".join(item.drivers))


def test_empty_detections_give_empty_items() -> None:
    rg = _radiograph(np.full((50, 50), BG), 0.2)
    out = describe(rg, _anatomy((50, 50), 0.2), Detections(), params=DescribeParams())
    assert out.items == ()
    assert out.image_descriptors["n_findings"] == 0
    assert out.image_descriptors["n_sites"] == 0


def test_sites_are_counted_by_distance() -> None:
    s = 0.5
    shape = (400, 400)
    masks = [_disk(shape, (50, 50), 6), _disk(shape, (60, 70), 6), _disk(shape, (350, 350), 6)]
    items = []
    for i, m in enumerate(masks, start=1):
        det = _detections(m).items[0]
        items.append(Detection(id=i, bbox=det.bbox, particles=det.particles, confidence=1.0))
    img = np.where(masks[0] | masks[1] | masks[2], CALC, BG)
    out = describe(
        _radiograph(img, s),
        _anatomy(shape, s),
        Detections(items=tuple(items)),
        params=DescribeParams(),
    )
    assert [d.detection_id for d in out.items] == [1, 2, 3]
    assert out.image_descriptors["n_sites"] == 2
    assert out.image_descriptors["n_findings"] == 3
    assert out.image_descriptors["distribution"] == "regional"
    assert out.image_descriptors["total_area_mm2"] == pytest.approx(
        sum(d.area_mm2 for d in out.items)
    )
    assert "body_part" in out.image_descriptors


def test_shipped_params_load() -> None:
    p = load_config().describe
    assert p.features == FEATURES or set(p.features) <= set(FEATURES)
    assert len(p.w_vascular) == len(p.features)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"similar_cv_max": -1.0}, r"describe\.similar_cv_max = -1\.0 is out of range"),
        ({"pair_min_spacing_mm": 9.0}, r"pair_min_spacing_mm = 9\.0 must be below"),
        ({"features": ("bias", "shoe_size")}, r"unknown feature\(s\) shoe_size"),
        ({"w_vascular": (1.0, 2.0)}, r"describe\.w_vascular has 2 weights; expected 20"),
        ({"line_min_length_mm": 0.0}, r"describe\.line_min_length_mm = 0\.0; expected a value > 0"),
    ],
    ids=["cv", "pair-order", "feature", "weights-length", "positive"],
)
def test_params_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DescribeParams(**kwargs)  # type: ignore[arg-type]


def test_prior_names_only_known_features() -> None:
    from calcimg.describe import _PRIOR

    for weights in _PRIOR.values():
        assert set(weights) <= set(FEATURES)


def test_descriptors_are_plain_json_values() -> None:
    import json

    mask = _lines(0.15, 3.0)
    item = _run(mask, np.where(mask, CALC, BG), 0.15).items[0]
    for key, value in item.descriptors.items():
        assert value is None or type(value) in (int, float, bool, str), key
    text = json.dumps(dict(item.descriptors), allow_nan=False)
    assert json.loads(text) == dict(item.descriptors)
    vocabulary = {
        "n_particles", "particle_diameter_mean_mm", "particle_diameter_max_mm",
        "particle_size_cv", "similar_sized", "extent_mm", "density_rel_cortex", "cnr",
        "linearity", "curvature_per_mm", "parallel_pair", "line_spacing_mm",
        "line_thickness_mm", "lucent_center", "ring_and_arc", "septa", "solidity",
        "eccentricity", "distribution",
    }  # fmt: skip
    assert vocabulary <= set(item.descriptors)


def test_anisotropic_spacing_and_tiny_particles_at_the_border() -> None:
    # a 4 mm disk on 0.1 x 0.2 mm pixels is an ellipse of 40 x 20 pixels
    rr, cc = np.ogrid[:120, :80]
    disk = ((rr - 60) * 0.1) ** 2 + ((cc - 40) * 0.2) ** 2 <= 2.0**2
    mask = disk.copy()
    mask[0, 0] = mask[119, 79] = mask[0, 79] = True  # single-pixel particles on the border
    img = np.where(mask, CALC, BG)
    rg = Radiograph(
        pixels=(img + np.random.default_rng(1).normal(0, 10, img.shape)).astype(np.float32),
        pixel_spacing_mm=(0.1, 0.2),
        spacing_source=SpacingSource.PIXEL_SPACING,
        calibrated=True,
    )
    dets = _detections(mask)
    item = describe(rg, _anatomy(mask.shape, 0.1), dets, params=DescribeParams()).items[0]
    d = item.descriptors
    assert d["n_particles"] == 4
    assert d["particle_diameter_max_mm"] == pytest.approx(4.0, abs=0.2)
    assert sum(item.pattern_scores.values()) == pytest.approx(1.0)


def test_tangents_are_the_principal_axis_of_each_neighbourhood() -> None:
    from calcimg.describe import _pca, _tangents

    rng = np.random.default_rng(5)
    t = np.linspace(0, 3, 40)
    arc = np.column_stack([t, np.sin(t)]) + rng.normal(0, 0.01, (40, 2))
    lone = np.array([[20.0, 20.0], [20.1, 20.0]])  # fewer than 3 neighbours
    points = np.vstack([arc, lone])
    got = _tangents(points, 0.5)
    tree_nbrs = [np.flatnonzero(np.hypot(*(points - p).T) <= 0.5) for p in points]
    for g, nbrs in zip(got, tree_nbrs, strict=True):
        want = _pca(points[nbrs])[1][:, 0]
        assert abs(float(np.dot(g, want))) == pytest.approx(1.0, abs=1e-9)
    assert np.array_equal(got[-2:], [[1.0, 0.0], [1.0, 0.0]])
