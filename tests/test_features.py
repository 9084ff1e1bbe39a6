"""Tests of the research feature extractor (calcimg.features, ``calcimg features``).

Ground truth is drawn: rectangles, disks and lines of known mm size at two pixel
spacings, and regions of known intensity distributions. The hand-computed values follow
the definitions of the feature dictionary (pyradiomics shape2D / firstorder).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

import calcimg
from _webfakes import cr_dataset
from calcimg.errors import ConfigError, InputError
from calcimg.features import FEATURES, FeatureParams, measure_regions, read_label_mask
from calcimg.features import extract as extract_mod
from calcimg.features.pseudonym import IDENTIFIER_COLUMNS, Pseudonymizer
from calcimg.features.registry import render_markdown
from calcimg.result import (
    Category,
    CategoryScore,
    Finding,
    ImageInfo,
    Location,
    Pattern,
    Result,
    Status,
)

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
SPACINGS = [(0.1, 0.1), (0.2, 0.25)]
SPACING_IDS = ["0.1x0.1mm", "0.2x0.25mm"]


def _one(mask: np.ndarray, spacing: tuple[float, float], pixels: np.ndarray | None = None):
    px = np.zeros(mask.shape, np.float32) if pixels is None else pixels
    rows = measure_regions(px, mask.astype(np.int32), spacing)
    assert len(rows) == 1
    return rows[0]


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("spacing", SPACINGS, ids=SPACING_IDS)
def test_rectangle_5x10mm(spacing: tuple[float, float]) -> None:
    sr, sc = spacing
    h, w = round(5.0 / sr), round(10.0 / sc)  # 5 mm tall, 10 mm wide
    m = np.zeros((h + 20, w + 20), np.uint8)
    m[7 : 7 + h, 9 : 9 + w] = 1
    f = _one(m, spacing)
    assert f["n_pixels"] == h * w
    assert f["area_mm2"] == pytest.approx(50.0)
    # the mesh is the pixel rectangle with its four corners cut by 1/8 pixel each
    assert f["mesh_area_mm2"] == pytest.approx((h * w - 0.5) * sr * sc)
    diag = math.hypot(sr / 2, sc / 2)
    assert f["perimeter_mm"] == pytest.approx(2 * (h - 1) * sr + 2 * (w - 1) * sc + 4 * diag)
    # farthest mesh vertices: edge midpoints at opposite ends of the long side
    d1 = math.hypot(h * sr, (w - 1) * sc)
    d2 = math.hypot((h - 1) * sr, w * sc)
    assert f["max_diameter_mm"] == pytest.approx(max(d1, d2))
    var_r = sr**2 * (h**2 - 1) / 12  # variance of a discrete uniform run of pixel centres
    var_c = sc**2 * (w**2 - 1) / 12
    assert f["major_axis_mm"] == pytest.approx(4 * math.sqrt(var_c))
    assert f["minor_axis_mm"] == pytest.approx(4 * math.sqrt(var_r))
    assert f["elongation"] == pytest.approx(math.sqrt(var_r / var_c))
    assert f["eccentricity"] == pytest.approx(math.sqrt(1 - var_r / var_c))
    assert f["extent"] == pytest.approx(1.0)
    assert f["solidity"] == pytest.approx(1.0)
    assert f["n_particles"] == 1
    assert f["centroid_row_px"] == pytest.approx(7 + (h - 1) / 2)
    assert f["centroid_col_px"] == pytest.approx(9 + (w - 1) / 2)
    assert f["equivalent_diameter_mm"] == pytest.approx(2 * math.sqrt(50 / math.pi))
    assert f["perimeter_to_area_per_mm"] == pytest.approx(f["perimeter_mm"] / f["mesh_area_mm2"])


@pytest.mark.parametrize("spacing", SPACINGS, ids=SPACING_IDS)
def test_disk_radius_4mm(spacing: tuple[float, float]) -> None:
    sr, sc = spacing
    radius = 4.0
    rr, cc = np.mgrid[0:200, 0:200]
    m = ((rr - 100) * sr) ** 2 + ((cc - 100) * sc) ** 2 <= radius**2
    f = _one(m, spacing)
    assert f["area_mm2"] == pytest.approx(m.sum() * sr * sc)
    assert f["area_mm2"] == pytest.approx(math.pi * radius**2, rel=0.03)
    assert f["mesh_area_mm2"] == pytest.approx(math.pi * radius**2, rel=0.05)
    assert f["max_diameter_mm"] == pytest.approx(2 * radius, abs=max(sr, sc))
    assert f["major_axis_mm"] == pytest.approx(2 * radius, rel=0.03)
    assert f["minor_axis_mm"] == pytest.approx(2 * radius, rel=0.03)
    assert f["elongation"] == pytest.approx(1.0, abs=0.02)
    assert f["sphericity"] == pytest.approx(1.0, abs=0.08)
    assert f["solidity"] == pytest.approx(1.0, abs=0.04)  # a digital disk is not quite convex
    rows_px = np.flatnonzero(m.any(axis=1))
    cols_px = np.flatnonzero(m.any(axis=0))
    bbox_px = (rows_px[-1] - rows_px[0] + 1) * (cols_px[-1] - cols_px[0] + 1)
    assert f["extent"] == pytest.approx(m.sum() / bbox_px)
    assert f["equivalent_diameter_mm"] == pytest.approx(2 * radius, rel=0.02)
    assert f["centroid_row_px"] == pytest.approx(100.0)
    assert f["centroid_col_px"] == pytest.approx(100.0)


@pytest.mark.parametrize("spacing", SPACINGS, ids=SPACING_IDS)
@pytest.mark.parametrize("axis", ["horizontal", "vertical"])
def test_line_8mm(spacing: tuple[float, float], axis: str) -> None:
    sr, sc = spacing
    m = np.zeros((120, 120), np.uint8)
    if axis == "horizontal":
        n, s_along, s_across = round(8.0 / sc), sc, sr
        m[50, 10 : 10 + n] = 1
    else:
        n, s_along, s_across = round(8.0 / sr), sr, sc
        m[10 : 10 + n, 50] = 1
    f = _one(m, spacing)
    assert f["area_mm2"] == pytest.approx(n * sr * sc)
    assert f["mesh_area_mm2"] == pytest.approx((n - 0.5) * sr * sc)
    # the farthest vertices are the midpoints of the two end edges
    assert f["max_diameter_mm"] == pytest.approx(n * s_along)
    assert f["max_diameter_mm"] == pytest.approx(8.0)
    assert f["perimeter_mm"] == pytest.approx(
        2 * (n - 1) * s_along + 4 * math.hypot(sr / 2, sc / 2)
    )
    assert f["elongation"] == pytest.approx(0.0)
    assert f["eccentricity"] == pytest.approx(1.0)
    assert f["minor_axis_mm"] == pytest.approx(0.0)
    assert f["major_axis_mm"] == pytest.approx(4 * s_along * math.sqrt((n**2 - 1) / 12))
    assert f["extent"] == pytest.approx(1.0)
    assert s_across > 0


def test_particles_count_and_solidity_of_a_pair() -> None:
    m = np.zeros((60, 60), np.uint8)
    m[10:20, 10:20] = 1
    m[10:20, 40:50] = 1  # two squares 20 px apart: one region, two particles
    f = _one(m, (0.1, 0.1))
    assert f["n_particles"] == 2
    assert f["area_mm2"] == pytest.approx(2.0)
    # hull of two 10x10 squares 20 px apart spans 40x10 px
    assert f["solidity"] == pytest.approx((2 * (100 - 0.5)) / (40 * 10 - 0.5), rel=1e-6)
    assert f["max_diameter_mm"] == pytest.approx(math.hypot(4.0, 0.9), rel=1e-6)


def test_single_pixel_region() -> None:
    m = np.zeros((9, 9), np.uint8)
    m[4, 4] = 1
    f = _one(m, (0.2, 0.2))
    assert f["mesh_area_mm2"] == pytest.approx(0.5 * 0.04)
    assert f["perimeter_mm"] == pytest.approx(4 * math.hypot(0.1, 0.1))
    assert f["max_diameter_mm"] == pytest.approx(0.2)
    assert f["elongation"] == 1.0
    assert f["solidity"] == pytest.approx(1.0)


# ------------------------------------------------------------------------ first order


def test_first_order_constant_region() -> None:
    m = np.zeros((40, 40), np.int32)
    m[10:20, 10:20] = 1
    px = np.full((40, 40), 1234.0, np.float32)
    f = _one(m, (0.1, 0.1), px)
    assert f["intensity_mean"] == f["intensity_median"] == 1234.0
    assert f["intensity_range"] == 0.0
    assert f["intensity_variance"] == 0.0
    assert f["intensity_skewness"] == 0.0
    assert f["intensity_kurtosis"] == 0.0
    assert f["intensity_uniformity"] == pytest.approx(1.0)
    assert f["intensity_entropy_bits"] == pytest.approx(0.0, abs=1e-12)
    assert f["intensity_energy"] == pytest.approx(100 * 1234.0**2)
    assert f["intensity_total_energy"] == pytest.approx(100 * 1234.0**2 * 0.01)
    assert f["intensity_rms"] == pytest.approx(1234.0)
    # the ring is the same constant: zero contrast and no noise to form a CNR
    assert f["contrast"] == 0.0
    assert f["cnr"] is None


def test_first_order_uniform_0_to_99() -> None:
    m = np.zeros((30, 30), np.int32)
    m[10:20, 10:20] = 1
    px = np.zeros((30, 30), np.float32)
    rng = np.random.default_rng(3)
    px[10:20, 10:20] = rng.permutation(100).reshape(10, 10)
    f = _one(m, (0.1, 0.1), px)
    n = 100
    assert f["intensity_mean"] == pytest.approx(49.5)
    assert f["intensity_median"] == pytest.approx(49.5)
    assert f["intensity_minimum"] == 0 and f["intensity_maximum"] == 99
    assert f["intensity_p10"] == pytest.approx(9.9)
    assert f["intensity_p90"] == pytest.approx(89.1)
    assert f["intensity_iqr"] == pytest.approx(49.5)
    assert f["intensity_variance"] == pytest.approx((n**2 - 1) / 12)
    assert f["intensity_skewness"] == pytest.approx(0.0, abs=1e-12)
    assert f["intensity_kurtosis"] == pytest.approx(3 - 6 * (n**2 + 1) / (5 * (n**2 - 1)))
    assert f["intensity_mad"] == pytest.approx(25.0)
    assert f["intensity_robust_mad"] == pytest.approx(20.0)  # values 10..89
    assert f["intensity_rms"] == pytest.approx(math.sqrt(99 * 100 * 199 / 6 / 100))
    # bin width 25 from 0: four bins of 25 values
    assert f["intensity_entropy_bits"] == pytest.approx(2.0)
    assert f["intensity_uniformity"] == pytest.approx(0.25)
    f10 = measure_regions(px, m, (0.1, 0.1), params=FeatureParams(bin_width=10))[0]
    assert f10["intensity_entropy_bits"] == pytest.approx(math.log2(10))
    assert f10["intensity_uniformity"] == pytest.approx(0.1)


def test_ring_contrast_and_cnr_ignore_other_regions() -> None:
    rng = np.random.default_rng(7)
    px = rng.normal(200.0, 10.0, (200, 200)).astype(np.float32)
    m = np.zeros((200, 200), np.int32)
    m[90:110, 90:110] = 1
    px[90:110, 90:110] = 1000.0
    m[90:110, 113:120] = 2  # a very dense neighbour inside region 1's ring
    px[90:110, 113:120] = 5000.0
    rows = measure_regions(px, m, (0.1, 0.1), value_range=(0.0, 4095.0))
    f = rows[0]
    assert f["label"] == 1
    assert f["ring_mean"] == pytest.approx(200.0, abs=2.0)
    assert f["contrast"] == pytest.approx(800.0, abs=2.0)
    assert f["contrast_norm"] == pytest.approx(800.0 / 4095.0, abs=1e-3)
    assert f["cnr"] == pytest.approx(80.0, rel=0.1)


def test_ring_mask_keeps_bone_out_of_the_background() -> None:
    px = np.full((100, 100), 300.0, np.float32)
    px[:, 56:] = 3000.0  # bone right of the deposit, inside its ring
    m = np.zeros((100, 100), np.int32)
    m[45:55, 40:50] = 1
    px[45:55, 40:50] = 1000.0
    anywhere = measure_regions(px, m, (0.2, 0.2))[0]
    soft = measure_regions(px, m, (0.2, 0.2), ring_mask=px < 2000)[0]
    assert anywhere["ring_mean"] > 300.0
    assert soft["ring_mean"] == pytest.approx(300.0)
    assert soft["contrast"] == pytest.approx(700.0)


def test_labels_and_shape_errors() -> None:
    px = np.zeros((20, 20), np.float32)
    m = np.zeros((20, 20), np.int32)
    m[2:4, 2:4] = 3
    m[10:12, 10:15] = 7
    rows = measure_regions(px, m, (0.1, 0.1))
    assert [r["label"] for r in rows] == [3, 7]
    assert [r["n_pixels"] for r in rows] == [4, 10]
    with pytest.raises(InputError, match=r"label mask is 10x20 .* expected 20x20"):
        measure_regions(px, m[:10], (0.1, 0.1))
    with pytest.raises(InputError, match="must hold integers"):
        measure_regions(px, m.astype(np.float32), (0.1, 0.1))
    with pytest.raises(ConfigError, match=r"features.bin_width = 0"):
        FeatureParams(bin_width=0)


def test_matches_pyradiomics_within_1_percent() -> None:
    radiomics = pytest.importorskip(
        "radiomics",
        reason="pyradiomics is not installable here (its 3.1.0 sdist fails to build); "
        "the closed-form values were compared with a locally built pyradiomics",
    )
    import SimpleITK as sitk  # noqa: N813
    from radiomics import firstorder, shape2D

    names = {
        "MeshSurface": "mesh_area_mm2",
        "PixelSurface": "area_mm2",
        "Perimeter": "perimeter_mm",
        "Sphericity": "sphericity",
        "MaximumDiameter": "max_diameter_mm",
        "MajorAxisLength": "major_axis_mm",
        "MinorAxisLength": "minor_axis_mm",
        "Elongation": "elongation",
        "Mean": "intensity_mean",
        "Entropy": "intensity_entropy_bits",
        "Kurtosis": "intensity_kurtosis",
        "RobustMeanAbsoluteDeviation": "intensity_robust_mad",
        "TotalEnergy": "intensity_total_energy",
    }
    rng = np.random.default_rng(0)
    img = rng.normal(1000, 200, (120, 140)).astype(np.float32)
    m = np.zeros((120, 140), np.uint8)
    cv2.ellipse(m, (70, 60), (40, 15), 30, 0, 360, 1, -1)
    for spacing in SPACINGS:
        im = sitk.GetImageFromArray(img.astype(np.float64))
        mk = sitk.GetImageFromArray(m)
        for x in (im, mk):
            x.SetSpacing((spacing[1], spacing[0]))
        ref = {}
        for cls in (shape2D.RadiomicsShape2D, firstorder.RadiomicsFirstOrder):
            ext = cls(im, mk, label=1, binWidth=25)
            ext.enableAllFeatures()
            ref.update({k: float(v) for k, v in ext.execute().items()})
        ours = measure_regions(img, m.astype(np.int32), spacing)[0]
        for theirs, mine in names.items():
            assert ours[mine] == pytest.approx(ref[theirs], rel=0.01), (theirs, radiomics)


# ------------------------------------------------------------------- files and the API


def _write_cr(path: Path, pixels: np.ndarray, spacing: tuple[float, float], **ids: str) -> Dataset:
    """A minimal CR image with Pixel Spacing and identifiers."""
    ds = cr_dataset(pixels)
    ds.PatientID = ids.get("patient_id", "MRN0042")
    ds.PatientName = ids.get("patient_name", "Doe^Jane")
    ds.AccessionNumber = ids.get("accession_number", "ACC9876")
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.Manufacturer = "test"
    ds.PixelSpacing = [spacing[0], spacing[1]]
    ds.save_as(path, enforce_file_format=True)
    return ds


@pytest.fixture
def image_and_mask(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    rng = np.random.default_rng(11)
    px = rng.normal(500, 20, (160, 200)).clip(0, 4095)
    labels = np.zeros((160, 200), np.uint16)
    labels[20:40, 30:80] = 1  # 2 x 5 mm at 0.1 mm
    rr, cc = np.mgrid[0:160, 0:200]
    labels[(rr - 110) ** 2 + (cc - 140) ** 2 <= 20**2] = 2  # disk of radius 2 mm
    px[labels > 0] = 2500
    img = tmp_path / "img.dcm"
    _write_cr(img, px, (0.1, 0.1))
    mask = tmp_path / "img.mask.png"
    cv2.imwrite(str(mask), labels)
    return img, mask, labels


def test_png_mask_through_the_api(image_and_mask: tuple[Path, Path, np.ndarray]) -> None:
    img, mask, labels = image_and_mask
    df = calcimg.extract_features(img, mask=mask)
    assert list(df["finding_id"]) == [1, 2]
    assert df.loc[0, "area_mm2"] == pytest.approx(20 * 50 * 0.01)
    assert df.loc[1, "area_mm2"] == pytest.approx((labels == 2).sum() * 0.01)
    assert df.loc[0, "intensity_mean"] == pytest.approx(2500.0)
    assert set(df["spacing_source"]) == {"pixel_spacing"}
    assert set(df["pixel_spacing_row_mm"]) == {0.1}
    assert set(df["calibrated"]) == {True}
    for col in ("source", "sop_instance_uid", "frame", "calcimg_version", "params_hash"):
        assert df[col].notna().all(), col
    img_df = calcimg.image_features(img, mask=mask)
    assert len(img_df) == 1
    row = img_df.iloc[0]
    assert row["n_findings"] == 2
    assert row["total_area_mm2"] == pytest.approx(df["area_mm2"].sum())
    assert row["n_sites"] == 1  # 10 mm apart: one site
    assert row["soft_tissue_area_mm2"] > 0
    expected_burden = row["total_area_mm2"] / (row["soft_tissue_area_mm2"] / 10_000)
    assert row["burden_mm2_per_100cm2"] == pytest.approx(expected_burden)


def test_mask_size_mismatch_is_an_error_row(tmp_path: Path, image_and_mask) -> None:
    img, _, labels = image_and_mask
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), labels[:100])
    rows = list(calcimg.iter_features(img, mask=small, include_empty=True))
    assert len(rows) == 1
    assert rows[0]["status"] == "error"
    assert "mask is 100x200 (rows x columns); expected 160x200" in rows[0]["error"]
    with pytest.raises(InputError, match="mask is 100x200"):
        read_label_mask(small, shape=(160, 200))
    with pytest.raises(InputError, match="mask file not found"):
        read_label_mask(tmp_path / "nope.png", shape=(160, 200))


def test_dicom_seg_mask(tmp_path: Path, image_and_mask) -> None:
    hd = pytest.importorskip("highdicom")
    img, png, labels = image_and_mask
    source = pydicom.dcmread(img)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=k,
            segment_label=f"calcification {k}",
            segmented_property_category=hd.sr.CodedConcept("49755003", "SCT", "Morphologic"),
            segmented_property_type=hd.sr.CodedConcept("18115005", "SCT", "Calcification"),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for k in (1, 2)
    ]
    seg = hd.seg.Segmentation(
        source_images=[source],
        pixel_array=labels.astype(np.uint8)[None],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=2,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
    )
    seg_path = tmp_path / "img.seg.dcm"
    seg.save_as(seg_path)
    arr = read_label_mask(seg_path, shape=labels.shape, sop_instance_uid=source.SOPInstanceUID)
    np.testing.assert_array_equal(arr, labels.astype(np.int32))
    from_seg = calcimg.extract_features(img, mask=seg_path)
    from_png = calcimg.extract_features(img, mask=png)
    cols = ["finding_id", "area_mm2", "perimeter_mm", "intensity_mean", "cnr"]
    assert from_seg[cols].equals(from_png[cols])
    with pytest.raises(InputError, match=r"no frames for SOP Instance UID 1\.2\.3"):
        read_label_mask(seg_path, shape=labels.shape, sop_instance_uid="1.2.3")


def test_detector_findings_use_the_same_region_features(
    monkeypatch: pytest.MonkeyPatch, image_and_mask
) -> None:
    """Findings from a Result's label mask get exactly the user-mask features, plus the
    detector's pattern, descriptors and categories."""
    img, png, labels = image_and_mask

    def fake_analyze(rg, *, context, config):
        finding = Finding(
            id=2,
            pattern=Pattern.VASCULAR,
            pattern_scores={str(p): (1.0 if p is Pattern.VASCULAR else 0.0) for p in Pattern},
            confidence=0.9,
            bbox=(90, 120, 131, 161),
            centroid_rc=(110.0, 140.0),
            area_mm2=12.5,
            n_particles=1,
            descriptors={"linearity": 0.2, "distribution": "focal"},
            location=Location(nearest_joint="knee", distance_to_joint_mm=30.0),
            categories=(CategoryScore(name=Category.PHLEBOLITH, score=0.7),),
        )
        return Result(
            source=rg.source,
            status=Status.OK,
            image=ImageInfo(
                rows=rg.shape[0],
                columns=rg.shape[1],
                pixel_spacing_mm=rg.pixel_spacing_mm,
                spacing_source=str(rg.spacing_source),
                calibrated=rg.calibrated,
            ),
            findings=(finding,),
            categories=(CategoryScore(name=Category.PHLEBOLITH, score=0.7, finding_ids=(2,)),),
            label_mask=np.where(labels == 2, 2, 0).astype(np.int32),
        )

    monkeypatch.setattr(extract_mod, "analyze_radiograph", fake_analyze)
    det = calcimg.extract_features(img)
    user = calcimg.extract_features(img, mask=png)
    assert list(det["finding_id"]) == [2]
    shape_cols = [f.name for f in FEATURES if f.group in ("shape", "intensity", "context")]
    for col in shape_cols:
        a, b = det.loc[0, col], user.loc[1, col]
        assert (a == b) or (a is None and b is None) or (a != a and b != b), col
    assert det.loc[0, "pattern"] == "vascular"
    assert det.loc[0, "descriptor_linearity"] == 0.2
    assert det.loc[0, "category_score_phlebolith"] == 0.7
    assert det.loc[0, "nearest_joint"] == "knee"
    image_df = calcimg.image_features(img)
    _assert_documented([*det.columns, *image_df.columns])
    image = image_df.iloc[0]
    assert image["n_findings_vascular"] == 1
    assert image["n_findings_amorphous"] == 0
    assert image["top_category"] == "phlebolith"
    assert image["category_score_phlebolith"] == 0.7


def test_lazy_exports_do_not_import_pandas() -> None:
    code = (
        "import sys, calcimg; assert 'pandas' not in sys.modules; "
        "assert callable(calcimg.iter_features); assert 'pandas' not in sys.modules; "
        "calcimg.extract_features; print('ok')"
    )
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
    for name in ("extract_features", "image_features", "iter_features", "iter_image_features"):
        assert name in calcimg.__all__


def test_feature_params_from_mapping() -> None:
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) features.bin_wdth; valid"):
        extract_mod.feature_params_from({"bin_wdth": 3})
    p = extract_mod.feature_params_from({"bin_width": 10, "min_ring_pixels": 5})
    assert p.bin_width == 10.0 and p.min_ring_pixels == 5
    assert dataclasses.replace(p, bin_width=3.0).bin_width == 3.0


def test_n_sites_single_linkage() -> None:
    pts = np.array([[0.0, 0.0], [40.0, 0.0], [80.0, 0.0], [300.0, 0.0]])
    assert extract_mod.n_sites(pts, 50.0) == 2  # a chain 40 mm apart is one site
    assert extract_mod.n_sites(pts, 30.0) == 4
    assert extract_mod.n_sites(pts[:0], 50.0) == 0


# ---------------------------------------------------------------------------- the CLI


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run(
        [sys.executable, "-m", "calcimg", "features", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_cli_list_prints_every_feature() -> None:
    out = _cli("--list")
    assert out.returncode == 0, out.stderr
    for f in FEATURES:
        assert f"{f.name} ({f.unit}; {f.level})" in out.stdout
    assert "pyradiomics shape2D MeshSurface" in out.stdout


def test_docs_page_is_rendered_from_the_registry() -> None:
    doc = (REPO / "docs" / "features.md").read_text(encoding="utf-8")
    assert render_markdown() in doc, "regenerate docs/features.md: scripts/render_feature_docs.py"


def test_cli_batch_csv_csv_and_parquet_resume(tmp_path: Path, image_and_mask) -> None:
    pd = pytest.importorskip("pandas")
    img, mask, _ = image_and_mask
    # a film of noise alone, analysed without a mask: no finding, so its narrow row
    # (first in the batch) makes the CSV widen its header when the masked rows come
    blank = tmp_path / "blank.dcm"
    _write_cr(
        blank, np.random.default_rng(12).normal(500, 20, (160, 200)).clip(0, 4095), (0.1, 0.1)
    )
    batch = tmp_path / "batch.csv"
    batch.write_text(
        f"Image,Mask,reader,site\n{blank.name},,R2,south\n{img.name},{mask.name},R1,north\n",
        encoding="utf-8",
    )
    out_csv = tmp_path / "out" / "f.csv"
    res = _cli(str(batch), "--out", str(out_csv))
    assert res.returncode == 0, res.stderr
    rows = _read_csv(out_csv)
    assert "intensity_mean" in rows[0] and rows[0]["intensity_mean"] == ""
    by_reader: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_reader.setdefault(r["reader"], []).append(r)
    assert [r["finding_id"] for r in by_reader["R1"]] == ["1", "2"]
    assert {r["site"] for r in by_reader["R1"]} == {"north"}
    # nothing on the noise film: one status row without a finding id
    assert [(r["finding_id"], r["status"]) for r in by_reader["R2"]] == [("", "ok")]
    # a rerun skips both inputs (keys: image hash, mask hash)
    res = _cli(str(batch), "--out", str(out_csv))
    assert res.returncode == 0, res.stderr
    assert "2 input(s) already in" in res.stderr
    assert len(_read_csv(out_csv)) == len(rows)
    res = _cli(str(batch), "--out", str(out_csv), "--overwrite")
    assert len(_read_csv(out_csv)) == len(rows)

    out_pq = tmp_path / "f.parquet"
    res = _cli(str(batch), "--out", str(out_pq), "--level", "image")
    assert res.returncode == 0, res.stderr
    df = pd.read_parquet(out_pq)
    assert list(df["reader"]) == ["R2", "R1"]
    assert list(df["n_findings"]) == [0, 2]
    assert not (tmp_path / "f.parquet.parts").exists()
    res = _cli(str(batch), "--out", str(out_pq), "--level", "image")
    assert "2 input(s) already in" in res.stderr
    assert len(pd.read_parquet(out_pq)) == 2


def test_cli_errors_become_rows(tmp_path: Path, image_and_mask) -> None:
    img, _, _ = image_and_mask
    bad = tmp_path / "truncated.dcm"
    data = img.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "f.csv"
    res = _cli(str(bad), "--out", str(out))
    assert res.returncode == 1
    rows = _read_csv(out)
    assert rows[0]["status"] == "error"
    assert "truncated" in rows[0]["error"]
    res = _cli(str(bad), "--out", str(tmp_path / "p.csv"), "--pseudonymize", "k")
    row = _read_csv(tmp_path / "p.csv")[0]
    assert "truncated" in row["error"]
    assert "truncated.dcm" not in row["error"] and str(tmp_path) not in row["error"]
    assert row["source"] == Pseudonymizer("k").pseudonym(str(bad)) in row["error"]
    res = _cli(str(bad), "--out", str(tmp_path / "f.xlsx"))
    assert res.returncode == 2
    assert "unknown table format '.xlsx'; expected .csv or .parquet" in res.stderr


def test_cli_pseudonymize(tmp_path: Path, image_and_mask) -> None:
    img, mask, _ = image_and_mask
    identifiers = ["MRN0042", "Doe^Jane", "ACC9876", str(img), str(mask)]
    ds = pydicom.dcmread(img)
    identifiers += [ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID]
    outs = []
    for name in ("a.csv", "b.csv"):
        out = tmp_path / name
        res = _cli(str(img), "--mask", str(mask), "--out", str(out), "--pseudonymize", "s3cret")
        assert res.returncode == 0, res.stderr
        outs.append(out)
        text = out.read_text(encoding="utf-8")
        for ident in identifiers:
            assert ident not in text, ident
        assert extract_mod.file_sha256(img) not in text
    a, b = (_read_csv(o) for o in outs)
    p = Pseudonymizer("s3cret")
    for col in IDENTIFIER_COLUMNS:
        assert [r[col] for r in a] == [r[col] for r in b], col
    assert a[0]["patient_id"] == p.pseudonym("MRN0042")
    assert a[0]["patient_id"] != Pseudonymizer("other").pseudonym("MRN0042")
    assert len(a[0]["patient_id"]) == 16
    assert a[0]["area_mm2"] == b[0]["area_mm2"] != ""
    # resuming with the same salt recognises the pseudonymised hashes
    res = _cli(str(img), "--mask", str(mask), "--out", str(outs[0]), "--pseudonymize", "s3cret")
    assert "1 input(s) already in" in res.stderr


def _assert_documented(columns: list[str]) -> None:
    names = {f.name for f in FEATURES}
    templates = [f.name.split("<")[0] for f in FEATURES if "<" in f.name]
    for col in columns:
        assert col in names or any(col.startswith(t) for t in templates), col


def test_every_output_column_is_in_the_dictionary(image_and_mask) -> None:
    img, mask, _ = image_and_mask
    rows = list(calcimg.iter_features(img, mask=mask)) + list(
        calcimg.iter_image_features(img, mask=mask)
    )
    assert rows
    _assert_documented([col for row in rows for col in row])


def test_nrrd_mask_via_simpleitk(tmp_path: Path, image_and_mask) -> None:
    sitk = pytest.importorskip("SimpleITK", reason="SimpleITK (optional) is not installed")
    img, png, labels = image_and_mask
    nrrd = tmp_path / "labels.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(labels.astype(np.uint16)), str(nrrd))
    np.testing.assert_array_equal(read_label_mask(nrrd, shape=labels.shape), labels)
    a = calcimg.extract_features(img, mask=nrrd)
    b = calcimg.extract_features(img, mask=png)
    assert a["area_mm2"].tolist() == b["area_mm2"].tolist()


def test_nrrd_without_simpleitk_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nrrd = tmp_path / "labels.nii.gz"
    nrrd.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "SimpleITK", None)
    with pytest.raises(InputError, match=r"needs SimpleITK; install it with `pip install"):
        read_label_mask(nrrd, shape=(10, 10))


def test_colour_mask_is_refused(tmp_path: Path) -> None:
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[2:4, 2:4] = (255, 0, 0)
    path = tmp_path / "colour.png"
    cv2.imwrite(str(path), rgb)
    with pytest.raises(InputError, match="mask is a colour image; expected one channel"):
        read_label_mask(path, shape=(10, 10))


def test_worker_processes_give_the_same_rows(tmp_path: Path, image_and_mask) -> None:
    img, mask, _ = image_and_mask
    batch = tmp_path / "b.csv"
    batch.write_text(f"Image,Mask\n{img},{mask}\n{img},{mask}\n", encoding="utf-8")
    one = calcimg.extract_features(batch, jobs=1)
    two = calcimg.extract_features(batch, jobs=2)
    assert len(one) == 4
    assert one.equals(two)
