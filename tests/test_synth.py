"""The simulator: determinism, truth geometry, and the committed sample_dicoms set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest

from calcimg.ingest import read_radiograph
from calcimg.synth import SCENARIOS, generate, write_sample
from calcimg.synth.anatomies import ANATOMIES, HELD_OUT_ANATOMIES, build_template
from calcimg.synth.dicomout import TRANSFER_SYNTAXES
from calcimg.synth.generate import HELD_OUT_SCENARIOS
from calcimg.synth.scene import BONE, FOREIGN, JOINT, SOFT

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_dicoms"
SMALL = 640  # longest side of test films: fast, spacing about 0.3-0.6 mm

PATTERNS = {"amorphous", "finely_speckled", "globular_periarticular", "vascular", "chondral_line"}
CONFOUNDERS = {
    "marker",
    "metal",
    "text",
    "skin_fold",
    "collimation",
    "sesamoid",
    "bone_island",
    "osteophyte",
    "overlap",
    "heterotopic_ossification",
}


def _sample_truths() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(SAMPLES.glob("*.truth.json"))]


# --------------------------------------------------------------------------- generator


def test_exact_distance_is_the_euclidean_distance_to_the_nearest_zero() -> None:
    """The generator's distance transform (OpenCV's precise one differed between calls
    by a float32 step, so a seed did not always give the same film)."""
    from calcimg.synth.geometry import exact_distance

    rng = np.random.default_rng(3)
    mask = (rng.random((40, 37)) > 0.05).astype(np.uint8) * 255
    zeros = np.argwhere(mask == 0)
    rows, cols = np.mgrid[: mask.shape[0], : mask.shape[1]]
    brute = np.sqrt(
        ((rows[..., None] - zeros[:, 0]) ** 2 + (cols[..., None] - zeros[:, 1]) ** 2).min(-1)
    ).astype(np.float32)
    d = exact_distance(mask)
    assert d.dtype == np.float32 and np.array_equal(d, brute)
    assert all(np.array_equal(exact_distance(mask), d) for _ in range(5))
    # no zero pixel: float32's largest everywhere, as cv2.distanceTransform gives
    assert (exact_distance(np.ones((5, 4), np.uint8)) == np.finfo(np.float32).max).all()


def test_same_seed_same_sample() -> None:
    a = generate(5, max_side_px=SMALL, anatomy="knee_ap", scenario="dystrophic")
    b = generate(5, max_side_px=SMALL, anatomy="knee_ap", scenario="dystrophic")
    assert np.array_equal(a.pixels, b.pixels)
    assert np.array_equal(a.lesion_mask, b.lesion_mask)
    assert np.array_equal(a.labels, b.labels)
    assert a.truth == b.truth
    c = generate(6, max_side_px=SMALL, anatomy="knee_ap", scenario="dystrophic")
    assert not np.array_equal(a.pixels, c.pixels)


def _check_truth_geometry(s: Any) -> None:
    """Every lesion's mask lies where its pattern says, and its numbers match the mask."""
    sp = s.spacing_mm
    for les in s.truth["lesions"]:
        m = s.lesion_mask == les["id"]
        assert m.any(), les
        ys, xs = np.nonzero(m)
        assert les["bbox"] == [int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1]
        assert les["area_mm2"] == pytest.approx(m.sum() * sp * sp, rel=1e-3)
        assert les["centroid_rc"] == pytest.approx([ys.mean(), xs.mean()], abs=0.01)
        n, _ = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
        assert les["n_particles"] == n - 1
        region = s.labels[m]
        if les["pattern"] == "chondral_line":
            assert (region == JOINT).all(), "chondral line outside the joint space"
            assert les["intra_articular"] and les["joint"] is not None
        elif les["subtype"] == "ring_and_arc":
            assert np.isin(region, [SOFT, JOINT]).all()
            assert les["intra_articular"] and les["joint"] is not None
            assert les["n_particles"] >= 4
        else:
            # soft tissue; a vessel may cross a little bone in projection
            assert (region == SOFT).mean() >= 0.97, les["pattern"]
            assert not les["intra_articular"]
        assert les["expected_category"] in les["acceptable_categories"]


POSITIVE = [s for s in SCENARIOS if s != "negative"]


@pytest.mark.parametrize("scenario", POSITIVE, ids=POSITIVE)
def test_truth_masks_lie_where_the_patterns_say(scenario: str) -> None:
    seen = 0
    for seed in (11, 12, 13):
        s = generate(seed, max_side_px=SMALL, scenario=scenario)
        assert s.truth["flag"] == bool(s.truth["lesions"])
        _check_truth_geometry(s)
        seen += len(s.truth["lesions"])
    assert seen > 0, f"no {scenario} lesion could be placed in 3 small films"


def test_negative_films_have_no_lesions() -> None:
    s = generate(3, max_side_px=SMALL, scenario="negative")
    assert s.truth["lesions"] == [] and not s.truth["flag"]
    assert not s.lesion_mask.any()


def test_calcification_is_visible_but_not_the_brightest() -> None:
    """Non-subtle lesions are brighter than the soft tissue around them, and metal and
    lead markers are brighter than any lesion (canonical pixels, higher = denser)."""
    s = generate(
        21, max_side_px=900, anatomy="leg_ap", scenario="dystrophic", force=("metal:pin", "marker")
    )
    px = s.pixels.astype(np.float64)
    assert s.truth["lesions"]
    for les in s.truth["lesions"]:
        m = s.lesion_mask == les["id"]
        ring = (
            (cv2.dilate(m.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0)
            & ~m
            & (s.labels == SOFT)
        )
        if not les["subtle"]:
            assert px[m].mean() > px[ring].mean()
        foreign = s.labels == FOREIGN
        assert foreign.any()
        assert np.percentile(px[foreign], 90) > np.percentile(px[m], 99)
    bone = s.labels == BONE
    soft = s.labels == SOFT
    assert np.median(px[bone]) > np.median(px[soft])


def test_written_sample_reads_back_through_ingest(tmp_path: Path) -> None:
    s = generate(8, max_side_px=SMALL, anatomy="hand_pa", scenario="calcinosis_circumscripta")
    dcm = write_sample(s, tmp_path)
    t = json.loads((tmp_path / "synth_0008.truth.json").read_text())
    rg = read_radiograph(dcm)
    assert rg.shape == (t["rows"], t["columns"])
    assert rg.pixel_spacing_mm == pytest.approx(tuple(t["pixel_spacing_mm"]), abs=1e-9)
    mask = cv2.imread(str(tmp_path / "synth_0008.mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint16 and np.array_equal(mask, s.lesion_mask)
    # canonical pixels are the generated ones up to an affine map (MONOCHROME1 inverted)
    r = np.corrcoef(rg.pixels.ravel(), s.pixels.ravel().astype(np.float32))[0, 1]
    assert r > 0.999


# ------------------------------------------------------------------ held-out anatomies

HELD_OUT = list(HELD_OUT_ANATOMIES)
HELD_OUT_SMALL = 600


def _check_in_body(s: Any) -> None:
    """Every lesion lies inside the body outline (no background pixel under it)."""
    for les in s.truth["lesions"]:
        region = s.labels[s.lesion_mask == les["id"]]
        assert region.size and not (region == 0).any(), les


@pytest.mark.parametrize("anatomy", HELD_OUT, ids=HELD_OUT)
def test_held_out_anatomy_generates_with_its_own_scenarios(anatomy: str) -> None:
    """Forced without a scenario, a held-out anatomy draws only its own scenarios; bone,
    soft tissue and joint spaces are all present and lesions lie on soft tissue."""
    scenarios = set()
    for seed in range(40, 48):
        s = generate(seed, max_side_px=HELD_OUT_SMALL, anatomy=anatomy)
        assert s.anatomy == s.truth["anatomy"] == anatomy
        assert s.scenario in HELD_OUT_SCENARIOS[anatomy]
        scenarios.add(s.scenario)
        assert {SOFT, BONE, JOINT} <= set(np.unique(s.labels).tolist())
        assert s.truth["joints"], "no joint space rendered"
        _check_truth_geometry(s)
        _check_in_body(s)
    assert len(scenarios) >= 3, scenarios


HELD_OUT_POSITIVE = [(a, sc) for a in HELD_OUT for sc in HELD_OUT_SCENARIOS[a] if sc != "negative"]


@pytest.mark.parametrize(
    ("anatomy", "scenario"), HELD_OUT_POSITIVE, ids=[f"{a}-{sc}" for a, sc in HELD_OUT_POSITIVE]
)
def test_held_out_lesions_lie_on_soft_tissue(anatomy: str, scenario: str) -> None:
    seen = 0
    for seed in (11, 12):
        s = generate(seed, max_side_px=HELD_OUT_SMALL, anatomy=anatomy, scenario=scenario)
        assert s.truth["flag"] == bool(s.truth["lesions"])
        _check_truth_geometry(s)
        _check_in_body(s)
        seen += len(s.truth["lesions"])
    assert seen > 0, f"no {scenario} lesion could be placed on {anatomy} in 2 small films"


@pytest.mark.parametrize("anatomy", HELD_OUT, ids=HELD_OUT)
def test_every_scenario_and_confounder_runs_on_held_out_anatomies(anatomy: str) -> None:
    """Scenarios outside the anatomy's list (forced) and every confounder kind still run:
    no template assumption (a named joint, finger tips, a phlebolith zone) is required."""
    force = (
        "marker",
        "text",
        "collimation",
        "skin_fold",
        "sesamoid",
        "bone_island",
        "osteophyte",
        "heterotopic_ossification",
        "metal",
    )
    for i, scenario in enumerate(SCENARIOS):
        s = generate(30 + i, max_side_px=400, anatomy=anatomy, scenario=scenario, force=force)
        assert s.scenario == scenario
        _check_truth_geometry(s)
        _check_in_body(s)
    kinds = {c["kind"] for c in s.truth["confounders"]}
    assert {"marker", "metal", "sesamoid"} <= kinds, kinds


@pytest.mark.parametrize("anatomy", HELD_OUT, ids=HELD_OUT)
def test_held_out_same_seed_same_sample(anatomy: str) -> None:
    a = generate(9, max_side_px=HELD_OUT_SMALL, anatomy=anatomy)
    b = generate(9, max_side_px=HELD_OUT_SMALL, anatomy=anatomy)
    assert np.array_equal(a.pixels, b.pixels)
    assert np.array_equal(a.lesion_mask, b.lesion_mask)
    assert np.array_equal(a.labels, b.labels)
    assert a.truth == b.truth


# seed -> what the seed drew before the held-out anatomies existed (max_side_px=900)
OLD_DRAWS = {
    1000: ("leg_ap", "phlebolith", 5, (898, 412), 0.402, "rle"),
    1002: ("knee_lat", "chondrocalcinosis_cppd", 1, (898, 804), 0.283, "jpeg2000"),
    1004: ("pelvis_ap", "synovial_chondromatosis", 1, (812, 900), 0.408, "jpeg2000"),
    1007: ("hand_pa", "chondrocalcinosis_cppd", 1, (900, 716), 0.292, "jpeg2000"),
    1013: ("knee_ap", "calcinosis_universalis", 1, (900, 690), 0.308, "jpeg_lossless_sv1"),
}


@pytest.mark.parametrize("seed", list(OLD_DRAWS), ids=[str(k) for k in OLD_DRAWS])
def test_held_out_anatomies_leave_old_draws_unchanged(seed: int) -> None:
    """The held-out templates are outside ANATOMIES and SCENARIOS, so an old seed draws
    the same anatomy, scenario, size, spacing and syntax as before they were added."""
    before = generate(seed, max_side_px=900)
    generate(seed, max_side_px=900, anatomy="chest_pa")  # no state leaks between calls
    s = generate(seed, max_side_px=900)
    got = (
        s.anatomy,
        s.scenario,
        len(s.truth["lesions"]),
        s.pixels.shape,
        s.spacing_mm,
        s.options.transfer_syntax,
    )
    assert got == OLD_DRAWS[seed]
    assert np.array_equal(before.pixels, s.pixels) and before.truth == s.truth


@pytest.mark.parametrize(
    ("seed", "anatomy", "expected"),
    [
        (7, "hand_pa", ("tumoral_calcinosis", (600, 492), 0.409, "jpeg_ls")),
        (8, "pelvis_ap", ("dystrophic", (510, 598), 0.612, "explicit_le")),
    ],
)
def test_forced_old_anatomy_draws_unchanged(
    seed: int, anatomy: str, expected: tuple[object, ...]
) -> None:
    s = generate(seed, max_side_px=600, anatomy=anatomy)
    assert (s.scenario, s.pixels.shape, s.spacing_mm, s.options.transfer_syntax) == expected


def test_held_out_anatomies_are_never_drawn_unforced() -> None:
    assert not set(HELD_OUT_ANATOMIES) & set(ANATOMIES)
    for _weight, anatomies in SCENARIOS.values():
        assert not set(anatomies) & set(HELD_OUT_ANATOMIES)
    assert set(HELD_OUT_SCENARIOS) == set(HELD_OUT_ANATOMIES)
    for allowed in HELD_OUT_SCENARIOS.values():
        assert set(allowed) <= set(SCENARIOS)


def test_unknown_anatomy_lists_the_held_out_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown anatomy 'foot_ap'.*held-out.*foot_dp"):
        build_template("foot_ap", np.random.default_rng(0))


# ----------------------------------------------------------------------- sample_dicoms


def test_sample_dicoms_cover_every_pattern_confounder_and_syntax() -> None:
    truths = _sample_truths()
    assert 12 <= len(truths) <= 20
    patterns = {les["pattern"] for t in truths for les in t["lesions"]}
    assert patterns == PATTERNS
    subtypes = {les["subtype"] for t in truths for les in t["lesions"]}
    assert {"ring_and_arc", "tram_track", "phlebolith", "mass"} <= subtypes
    kinds = {c["kind"] for t in truths for c in t["confounders"]}
    assert kinds >= CONFOUNDERS, CONFOUNDERS - kinds
    assert sum(not t["lesions"] for t in truths) >= 3
    assert {t["transfer_syntax"] for t in truths} == {str(u) for u in TRANSFER_SYNTAXES.values()}
    assert {t["photometric_interpretation"] for t in truths} == {"MONOCHROME1", "MONOCHROME2"}
    assert {t["sop_class"] for t in truths} == {"CR", "DX"}
    total = sum(p.stat().st_size for p in SAMPLES.iterdir())
    assert total < 25 * 1024 * 1024


@pytest.mark.parametrize("name", [t["image"] for t in _sample_truths()])
def test_sample_reads_through_ingest_with_truth_spacing(name: str) -> None:
    t = json.loads((SAMPLES / name.replace(".dcm", ".truth.json")).read_text())
    rg = read_radiograph(SAMPLES / name)
    assert rg.shape == (t["rows"], t["columns"])
    assert rg.pixel_spacing_mm == pytest.approx(tuple(t["pixel_spacing_mm"]), abs=1e-9)
    assert rg.calibrated
    ds = pydicom.dcmread(SAMPLES / name, stop_before_pixels=True)
    assert str(ds.file_meta.TransferSyntaxUID) == t["transfer_syntax"]
    assert ds.PhotometricInterpretation == t["photometric_interpretation"]
    assert ds.Modality == t["sop_class"]
    mask = cv2.imread(str(SAMPLES / name.replace(".dcm", ".mask.png")), cv2.IMREAD_UNCHANGED)
    anat = cv2.imread(str(SAMPLES / name.replace(".dcm", ".anatomy.png")), cv2.IMREAD_UNCHANGED)
    assert mask.shape == anat.shape == rg.shape
    assert mask.dtype == np.uint16 and anat.dtype == np.uint8
    assert set(np.unique(mask)) == {0} | {les["id"] for les in t["lesions"]}
    # bone is denser than soft tissue on every film
    px = rg.pixels
    assert np.median(px[anat == BONE]) > np.median(px[anat == SOFT])
    for les in t["lesions"]:
        region = anat[mask == les["id"]]
        if les["pattern"] == "chondral_line":
            assert (region == JOINT).all()
        elif les["intra_articular"]:
            assert np.isin(region, [SOFT, JOINT]).all()
        else:
            assert (region == SOFT).mean() >= 0.97


SPACING_MODES = ["pixel", "imager", "imager_ermf", "pixel_calibrated"]


@pytest.mark.parametrize("sop", ["CR", "DX"])
@pytest.mark.parametrize("mode", SPACING_MODES)
@pytest.mark.parametrize("syntax", list(TRANSFER_SYNTAXES), ids=list(TRANSFER_SYNTAXES))
def test_every_syntax_and_spacing_mode_round_trips(
    tmp_path: Path, syntax: str, mode: str, sop: str
) -> None:
    """Lossless in every transfer syntax, and ingest derives the spacing we report."""
    from calcimg.synth.dicomout import DicomOptions, write_dicom

    rng = np.random.default_rng(0)
    px = rng.integers(0, 4096, (96, 80)).astype(np.uint16)
    photometric = "MONOCHROME1" if mode in ("imager", "pixel_calibrated") else "MONOCHROME2"
    opts = DicomOptions(
        sop=sop,
        photometric=photometric,
        spacing_mode=mode,
        transfer_syntax=syntax,
        magnification=1.2,
    )
    path = tmp_path / "x.dcm"
    spacing = write_dicom(
        path,
        px,
        bits=12,
        spacing_mm=0.143,
        options=opts,
        seed=1,
        body_part="KNEE",
        view="AP",
        laterality="L",
        age_years=50,
    )
    assert spacing == pytest.approx((0.143, 0.143), abs=1e-9)
    rg = read_radiograph(path)
    assert rg.pixel_spacing_mm == pytest.approx(spacing, abs=1e-12)
    ds = pydicom.dcmread(path)
    assert str(ds.file_meta.TransferSyntaxUID) == str(TRANSFER_SYNTAXES[syntax])
    stored = ds.pixel_array
    expect = px if photometric == "MONOCHROME2" else 4095 - px
    assert np.array_equal(stored, expect)
    # canonical pixels: higher = the generator's higher (more attenuation)
    assert np.corrcoef(rg.pixels.ravel(), px.ravel().astype(np.float32))[0, 1] > 0.99999
