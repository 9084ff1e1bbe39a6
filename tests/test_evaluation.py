"""calcimg.evaluation on hand-countable cases, and scripts/evaluate.py end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from calcimg.evaluation import (
    bbox_iou,
    evaluate,
    finding_hits_lesion,
    format_report,
    froc_points,
    score_image,
)
from scripts_mod import REPO, load_script

SAMPLES = REPO / "sample_dicoms"


def lesion(id_: int, bbox: list[int], pattern: str = "amorphous", **kw: Any) -> dict[str, Any]:
    d = {
        "id": id_,
        "pattern": pattern,
        "subtype": "clump",
        "expected_category": "dystrophic",
        "acceptable_categories": ["dystrophic"],
        "bbox": bbox,
    }
    d.update(kw)
    return d


def truth(
    lesions: list[dict[str, Any]], name: str = "a.dcm", spacing: float = 0.2
) -> dict[str, Any]:
    return {
        "image": name,
        "pixel_spacing_mm": [spacing, spacing],
        "flag": bool(lesions),
        "lesions": lesions,
    }


def finding(
    bbox: list[int],
    *,
    pattern: str = "amorphous",
    confidence: float = 0.9,
    centroid: list[float] | None = None,
    categories: tuple[str, ...] = (),
) -> dict[str, Any]:
    r0, c0, r1, c1 = bbox
    return {
        "pattern": pattern,
        "bbox": bbox,
        "centroid_rc": centroid or [(r0 + r1) / 2, (c0 + c1) / 2],
        "confidence": confidence,
        "categories": [{"name": n, "score": 1.0 - 0.1 * i} for i, n in enumerate(categories)],
    }


def result(findings: list[dict[str, Any]], status: str = "ok") -> dict[str, Any]:
    return {"status": status, "flag": bool(findings), "findings": findings}


# ----------------------------------------------------------------------------- matching


def test_bbox_iou_of_known_boxes() -> None:
    assert bbox_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert bbox_iou([0, 0, 10, 10], [0, 5, 10, 15]) == pytest.approx(50 / 150)
    assert bbox_iou([0, 0, 10, 10], [10, 10, 20, 20]) == 0.0


def test_centroid_rule_grows_bbox_by_2mm() -> None:
    les = lesion(1, [100, 100, 110, 110])
    # spacing 0.2 mm: 2 mm = 10 px; the finding's box is far away, only its centroid counts
    inside = finding([0, 0, 4, 4], centroid=[119.5, 105.0])
    outside = finding([0, 0, 4, 4], centroid=[120.5, 105.0])
    assert finding_hits_lesion(inside, les, (0.2, 0.2))
    assert not finding_hits_lesion(outside, les, (0.2, 0.2))


def test_iou_rule_at_threshold() -> None:
    les = lesion(1, [0, 0, 10, 10])
    f = finding([0, 8, 10, 30], centroid=[5.0, 100.0])  # IoU = 20 / 300 < 0.1
    assert not finding_hits_lesion(f, les, (0.1, 0.1), grow_mm=0.0)
    g = finding([0, 5, 10, 15], centroid=[5.0, 100.0])  # IoU = 50 / 150
    assert finding_hits_lesion(g, les, (0.1, 0.1), grow_mm=0.0)


def test_two_lesions_one_hit_one_false_positive() -> None:
    t = truth([lesion(1, [10, 10, 30, 30]), lesion(2, [200, 200, 220, 220], pattern="vascular")])
    r = result([finding([12, 12, 28, 28]), finding([500, 500, 510, 510], confidence=0.4)])
    m = evaluate([(t, r)])
    assert m["lesion"] == {
        "n": 2,
        "found": 1,
        "sensitivity": 0.5,
        "per_pattern": {
            "amorphous": {"n": 1, "found": 1, "sensitivity": 1.0},
            "vascular": {"n": 1, "found": 0, "sensitivity": 0.0},
        },
        "per_conspicuity": {},  # these lesions carry no subtle flag
    }
    assert m["fp_findings"] == 1
    assert m["fp_per_image"] == 1.0
    assert m["image"]["tp"] == 1 and m["image"]["sensitivity"] == 1.0
    assert m["image"]["specificity"] is None  # no negative image


def test_sensitivity_by_the_truths_subtle_flag() -> None:
    """The simulator flags its faint lesions ``subtle``; sensitivity is split by it."""
    faint = {**lesion(1, [10, 10, 30, 30]), "subtle": True}
    clear = {**lesion(2, [100, 100, 120, 120]), "subtle": False}
    clear2 = {**lesion(3, [300, 300, 320, 320]), "subtle": False}
    t = truth([faint, clear, clear2])
    m = evaluate([(t, result([finding([100, 100, 120, 120]), finding([12, 12, 28, 28])]))])
    assert m["lesion"]["per_conspicuity"] == {
        "conspicuous": {"n": 2, "found": 1, "sensitivity": 0.5},
        "subtle": {"n": 1, "found": 1, "sensitivity": 1.0},
    }
    assert "by the truth's subtle flag: conspicuous 0.500 (1/2), subtle 1.000 (1/1)" in (
        format_report(m)
    )


def test_image_level_flags_and_errors() -> None:
    pos = truth([lesion(1, [0, 0, 10, 10])], "p.dcm")
    neg = truth([], "n.dcm")
    neg2 = truth([], "n2.dcm")
    pairs = [
        (pos, result([], status="error")),  # an error counts as not flagged
        (neg, result([finding([50, 50, 60, 60])])),  # false positive image
        (neg2, result([])),
    ]
    m = evaluate(pairs)
    assert m["n_errors"] == 1
    assert m["image"] == {
        "tp": 0,
        "fp": 1,
        "fn": 1,
        "tn": 1,
        "sensitivity": 0.0,
        "specificity": 0.5,
    }
    assert m["fp_findings"] == 1
    assert m["fp_per_image"] == pytest.approx(1 / 3)


def test_pattern_confusion_and_categories() -> None:
    t = truth(
        [
            lesion(
                1,
                [0, 0, 20, 20],
                pattern="vascular",
                expected_category="phlebolith",
                acceptable_categories=["phlebolith"],
            ),
            lesion(
                2,
                [100, 100, 120, 120],
                pattern="chondral_line",
                expected_category="chondrocalcinosis_cppd",
                acceptable_categories=["chondrocalcinosis_cppd"],
            ),
            lesion(
                3,
                [300, 300, 320, 320],
                expected_category="metastatic",
                acceptable_categories=["metastatic", "dystrophic"],
            ),
        ]
    )
    r = result(
        [
            finding([0, 0, 20, 20], pattern="vascular", categories=("phlebolith", "dystrophic")),
            finding(
                [100, 100, 120, 120],
                pattern="amorphous",
                categories=("dystrophic", "metastatic", "chondrocalcinosis_cppd"),
            ),
            finding([300, 300, 320, 320], pattern="amorphous", categories=("dystrophic",)),
        ]
    )
    m = evaluate([(t, r)])
    assert m["pattern"]["n_matched"] == 3
    assert m["pattern"]["accuracy"] == pytest.approx(2 / 3)
    assert m["pattern"]["confusion"] == {
        "vascular": {"vascular": 1},
        "chondral_line": {"amorphous": 1},
        "amorphous": {"amorphous": 1},
    }
    assert m["category"]["top1"] == pytest.approx(1 / 3)  # only the phlebolith
    assert m["category"]["top3"] == pytest.approx(2 / 3)  # + cppd third
    assert m["category"]["top1_acceptable"] == pytest.approx(2 / 3)  # + dystrophic acceptable


def test_best_finding_is_the_one_with_highest_iou() -> None:
    t = truth([lesion(1, [0, 0, 20, 20], pattern="vascular")])
    r = result(
        [
            finding([0, 0, 40, 40], pattern="amorphous"),  # IoU 0.25
            finding([0, 0, 20, 20], pattern="vascular"),  # IoU 1
        ]
    )
    s = score_image(t, r)
    assert s.found == [True]
    assert s.best_finding[0] is not None and s.best_finding[0]["pattern"] == "vascular"
    assert s.fp_findings == []


def test_froc_points_sweep_confidence() -> None:
    t1 = truth([lesion(1, [0, 0, 10, 10]), lesion(2, [100, 100, 110, 110])], "1.dcm")
    t2 = truth([], "2.dcm")
    r1 = result(
        [finding([0, 0, 10, 10], confidence=0.9), finding([100, 100, 110, 110], confidence=0.3)]
    )
    r2 = result([finding([5, 5, 9, 9], confidence=0.6)])
    pts = froc_points([score_image(t1, r1), score_image(t2, r2)])
    assert pts == [
        {"threshold": 0.9, "sensitivity": 0.5, "fp_per_image": 0.0},
        {"threshold": 0.6, "sensitivity": 0.5, "fp_per_image": 0.5},
        {"threshold": 0.3, "sensitivity": 1.0, "fp_per_image": 0.5},
    ]


def test_report_names_every_metric() -> None:
    t = truth([lesion(1, [0, 0, 10, 10])])
    text = format_report(evaluate([(t, result([finding([0, 0, 10, 10])]))]))
    for word in ("image flag", "lesions", "false-positive", "pattern accuracy", "top-3", "FROC"):
        assert word in text


# ------------------------------------------------------------------------- end to end


def _run_evaluate(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``scripts/evaluate.py ARGS`` in a subprocess, with ``src`` on the path."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "evaluate.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_evaluate_script_on_sample_dicoms(tmp_path: Path) -> None:
    """Runs the current pipeline over sample_dicoms and checks the figures it prints
    against an independent recount from the saved results and the truth files."""
    out = tmp_path / "metrics.json"
    saved = tmp_path / "results.jsonl"
    proc = _run_evaluate(
        str(SAMPLES), "--json", str(out), "--save-results", str(saved), timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads(out.read_text())
    truths = [json.loads(p.read_text()) for p in sorted(SAMPLES.glob("*.truth.json"))]
    results = [json.loads(line) for line in saved.read_text().splitlines()]
    assert m["n_images"] == len(truths) == len(results)
    n_lesions = sum(len(t["lesions"]) for t in truths)
    assert m["lesion"]["n"] == n_lesions
    by_name = {Path(r["source"]).name: r for r in results}
    assert m == json.loads(json.dumps(evaluate([(t, by_name[t["image"]]) for t in truths])))
    if not any(r.get("findings") for r in results):
        # an empty detector: zero sensitivity, reported as such
        assert m["lesion"]["found"] == 0 and m["lesion"]["sensitivity"] == 0.0
        assert m["image"]["sensitivity"] == 0.0 and m["froc"] == []
    assert "lesions: sensitivity" in proc.stdout


def test_evaluate_script_reads_given_results(tmp_path: Path) -> None:
    t = truth([lesion(1, [10, 10, 30, 30])], "x.dcm")
    (tmp_path / "x.truth.json").write_text(json.dumps(t))
    res = tmp_path / "r.jsonl"
    res.write_text(
        json.dumps({**result([finding([10, 10, 30, 30])]), "source": "/elsewhere/x.dcm"}) + "\n"
    )
    out = tmp_path / "m.json"
    proc = _run_evaluate(str(tmp_path), "--results", str(res), "--json", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(out.read_text())
    assert m["lesion"]["sensitivity"] == 1.0 and m["fp_findings"] == 0


def test_evaluate_script_applies_overrides(tmp_path: Path) -> None:
    """``--set`` scores the pipeline as a site's overrides run it: a confidence cut no
    finding can pass leaves none, and the results carry the overridden parameters'
    hash; an unknown key is refused with the valid ones listed, and so is ``--set``
    beside ``--results`` (where it could change nothing)."""
    from calcimg import analyze

    film = next(  # the first sample the shipped parameters flag
        p
        for p in sorted(SAMPLES.glob("*.truth.json"))
        if analyze(SAMPLES / p.name.replace(".truth.json", ".dcm")).flag
    )
    name = film.name.removesuffix(".truth.json")
    shutil.copy(film, tmp_path / film.name)
    shutil.copy(SAMPLES / f"{name}.dcm", tmp_path / f"{name}.dcm")
    runs = {}
    for label, extra in (("default", []), ("strict", ["--set", "detect.min_confidence=1.0"])):
        saved = tmp_path / f"{label}.jsonl"
        out = tmp_path / f"{label}.json"
        proc = _run_evaluate(
            str(tmp_path), "--save-results", str(saved), "--json", str(out), *extra
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[label] = (json.loads(saved.read_text().splitlines()[0]), json.loads(out.read_text()))
    (r_def, _), (r_strict, m_strict) = runs["default"], runs["strict"]
    assert r_def["params_hash"] != r_strict["params_hash"]
    assert r_def["findings"] and r_strict["findings"] == []
    assert m_strict["lesion"]["found"] == 0 and m_strict["fp_findings"] == 0
    bad = _run_evaluate(str(tmp_path), "--set", "detect.no_such_knob=1")
    assert bad.returncode != 0
    assert "no_such_knob" in bad.stderr and "min_confidence" in bad.stderr
    assert "Traceback" not in bad.stderr
    # given results were made with their own parameters: --set cannot apply to them
    both = _run_evaluate(
        str(tmp_path), "--results", str(tmp_path / "default.jsonl"), "--set", "detect.x=1"
    )
    assert both.returncode != 0 and "--results" in both.stderr


def test_eval_anatomy_scores_the_truth_map_as_perfect_and_an_empty_one_as_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``scripts/eval_anatomy.py``'s bone, joint and foreign figures: the truth's own
    region codes, served as calcimg's map, score 1 (and no joint space on bone); a map
    of soft tissue only finds no bone, no joint and no foreign body."""
    import cv2
    import numpy as np

    from calcimg.anatomy import AnatomyMap, Region

    name = "synth_0001"  # a knee AP with one joint, a marker and a lesion
    for suffix in (".dcm", ".truth.json", ".anatomy.png", ".mask.png"):
        shutil.copy(SAMPLES / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    codes = cv2.imread(str(tmp_path / f"{name}.anatomy.png"), cv2.IMREAD_UNCHANGED)
    assert (codes == Region.JOINT_SPACE).any() and (codes == Region.FOREIGN).any()

    def as_map(labels: np.ndarray) -> AnatomyMap:
        return AnatomyMap.from_arrays(
            labels=labels.astype(np.uint8),
            cortex=np.zeros(labels.shape, bool),
            joint_labels=(labels == Region.JOINT_SPACE).astype(np.int32),
            distance_to_bone_mm=np.zeros(labels.shape, np.float32),
            joints=(),
            confounders=(),
        )

    mod = load_script("eval_anatomy")
    monkeypatch.setattr(mod, "map_anatomy", lambda rg, params: as_map(codes))
    perfect = mod.score(tmp_path, [])
    assert perfect["iou"] == perfect["recall"] == perfect["precision"] == 1.0
    assert perfect["joints_found"] == 1.0 and perfect["foreign_recall"] == 1.0
    assert perfect["joint_on_bone"] == 0.0 and perfect["air_as_soft"] == 0.0
    soft = np.where(codes == Region.BACKGROUND, Region.BACKGROUND, Region.SOFT_TISSUE)
    monkeypatch.setattr(mod, "map_anatomy", lambda rg, params: as_map(soft))
    empty = mod.score(tmp_path, [])
    assert empty["iou"] == empty["joints_found"] == empty["foreign_recall"] == 0.0
    # the whole film called soft tissue: the share of it that is air is the truth's
    everything = np.full(codes.shape, Region.SOFT_TISSUE, np.uint8)
    monkeypatch.setattr(mod, "map_anatomy", lambda rg, params: as_map(everything))
    air = float((codes == Region.BACKGROUND).mean())
    assert 0.0 < air < 1.0
    assert mod.score(tmp_path, [])["air_as_soft"] == pytest.approx(air, abs=1e-9)
