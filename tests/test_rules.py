"""The rule layer: golden cases from tests/golden_rules.toml, scoring, table schema."""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest

from calcimg.config import load_config
from calcimg.context import ClinicalContext
from calcimg.describe import Description, Descriptions
from calcimg.errors import ConfigError
from calcimg.params import models_dir
from calcimg.result import Category, Location, Pattern
from calcimg.rules import RulesParams, load_table, parse_table, rank, score_finding

HERE = Path(__file__).resolve().parent
GOLDEN = tomllib.loads((HERE / "golden_rules.toml").read_text(encoding="utf-8"))["case"]
ALL = RulesParams(max_categories=len(Category), min_score=0.0)


def make_description(case: dict[str, Any], detection_id: int = 1) -> Description:
    """A Description as the describer would build it for a golden case."""
    pattern = Pattern(case["pattern"])
    score = float(case.get("pattern_score", 0.8))
    scores = {p: (score if p is pattern else (1.0 - score) / 4) for p in Pattern}
    return Description(
        detection_id=detection_id,
        pattern=pattern,
        pattern_scores=scores,
        descriptors=dict(case["descriptors"]),
        location=Location(**case["location"]),
        area_mm2=float(case.get("area_mm2", 20.0)),
        centroid_rc=(100.0, 100.0),
    )


def rank_case(case: dict[str, Any], params: RulesParams = ALL, **context_override: Any) -> Any:
    ctx_dict = {**case["context"], **context_override}
    ctx = ClinicalContext.from_dict(ctx_dict) if ctx_dict else None
    descriptions = Descriptions(
        items=(make_description(case),), image_descriptors=dict(case["image"])
    )
    return rank(descriptions, context=ctx, params=params)


def test_golden_table_covers_every_category() -> None:
    tops = {c["top"] for c in GOLDEN}
    assert tops == {c.value for c in Category}


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_golden_case(case: dict[str, Any]) -> None:
    a = rank_case(case)
    ranked = a.findings[0].categories
    names = [c.name.value for c in ranked]
    assert names[0] == case["top"], f"ranking {[(c.name.value, c.score) for c in ranked[:4]]}"
    for expected in case["top3"]:
        assert expected in names[:3], f"{expected} not in top 3 {names[:3]}"
    evidence = "\n".join(ranked[0].evidence)
    for fragment in case.get("evidence", []):
        assert fragment in evidence
    assert math.isclose(sum(c.score for c in ranked), 1.0, abs_tol=1e-3)
    assert all(0.0 <= c.score <= 1.0 for c in ranked)
    assert [c.score for c in ranked] == sorted((c.score for c in ranked), reverse=True)


def _case(name_start: str) -> dict[str, Any]:
    return next(c for c in GOLDEN if c["name"].startswith(name_start))


@pytest.mark.parametrize(
    ("calcium", "phosphate", "expected"),
    [(10.0, 6.9, "dystrophic"), (10.0, 7.1, "metastatic"), (10.9, 7.4, "metastatic")],
    ids=["CaxP 69", "CaxP 71", "CaxP 80.7"],
)
def test_same_finding_moves_to_metastatic_above_ca_x_p_70(
    calcium: float, phosphate: float, expected: str
) -> None:
    case = _case("amorphous clump, no context")
    assert rank_case(case).findings[0].categories[0].name.value == "dystrophic"
    a = rank_case(case, serum_calcium_mg_dl=calcium, serum_phosphate_mg_dl=phosphate)
    top = a.findings[0].categories[0]
    assert top.name.value == expected
    cxp = calcium * phosphate
    if cxp > 70:
        assert f"Ca x P = {cxp:.1f} mg2/dL2 > 70 (metastatic threshold)" in " ".join(top.evidence)
    else:
        assert f"Ca x P = {cxp:.1f} mg2/dL2 <= 70" in " ".join(top.evidence)


def test_si_and_conventional_units_rank_identically() -> None:
    case = _case("large globular periarticular mass")
    si = rank_case(case)
    conv_ctx = {
        "renal_failure": True,
        "serum_calcium_mg_dl": 2.6 * 4.008,
        "serum_phosphate_mg_dl": 2.4 * 3.097,
    }
    conv = rank_case({**case, "context": conv_ctx})
    assert [(c.name, c.score) for c in si.findings[0].categories] == [
        (c.name, c.score) for c in conv.findings[0].categories
    ]
    assert si.findings[0].categories[0].evidence == conv.findings[0].categories[0].evidence


def test_albumin_si_and_corrected_calcium_rule() -> None:
    case = _case("amorphous clump, no context")
    a = rank_case(case, serum_calcium_mg_dl=10.2, albumin_g_l=25)  # corrected 11.4
    ev = " ".join(
        next(c for c in a.findings[0].categories if c.name.value == "metastatic").evidence
    )
    assert "albumin-corrected calcium 11.4 mg/dL > 10.5" in ev
    b = rank_case(case, serum_calcium_mg_dl=10.2, albumin_g_dl=4.5)  # corrected 9.8
    ev_b = " ".join(
        next(c for c in b.findings[0].categories if c.name.value == "metastatic").evidence
    )
    assert "corrected calcium" not in ev_b


def test_no_findings_gives_empty_assessment() -> None:
    a = rank(Descriptions(), context=None, params=RulesParams())
    assert a.findings == () and a.categories == () and a.workup == () and a.differential == ()


def test_workup_lists_missing_labs_only() -> None:
    case = _case("amorphous clump, no context")
    a = rank_case(case)
    assert a.workup[:4] == (
        "serum calcium",
        "inorganic phosphate",
        "alkaline phosphatase",
        "albumin",
    )
    b = rank_case(
        case,
        serum_calcium_mg_dl=9.5,
        serum_phosphate_mg_dl=3.5,
        albumin_g_dl=4.0,
        alkaline_phosphatase_u_l=90,
    )
    assert not {"serum calcium", "inorganic phosphate", "alkaline phosphatase", "albumin"} & set(
        b.workup
    )
    c = rank_case(case, serum_calcium_mg_dl=9.5)
    assert "serum calcium" not in c.workup and "albumin" in c.workup


def test_differential_vindicate_for_dystrophic_and_cppd_list_for_chondral_line() -> None:
    dys = rank_case(_case("amorphous clump, no context"))
    assert any(d.startswith("VINDICATE - Venous") for d in dys.differential)
    assert any("Trauma" in d for d in dys.differential)
    cppd = rank_case(_case("meniscal line"))
    text = " ".join(cppd.differential)
    for cause in (
        "pseudogout",
        "gout",
        "ochronosis",
        "hyperparathyroidism",
        "haemochromatosis",
        "diabetes",
        "degenerative",
    ):
        assert cause in text
    assert any("radiographs of other joints" in w for w in cppd.workup)


def test_metastatic_workup_suggests_other_sites_and_scintigraphy() -> None:
    a = rank_case(_case("finely speckled at three sites"))
    assert "bone scintigraphy" in a.workup
    assert any(w.startswith("radiographs of other sites") for w in a.workup)


def test_image_level_aggregates_findings_with_ids() -> None:
    vessel = make_description(_case("tram-track lines along a leg artery"), detection_id=1)
    phleb_case = _case("round 4 mm body")
    phleb = make_description(phleb_case, detection_id=2)
    phleb2 = make_description(phleb_case, detection_id=3)
    a = rank(
        Descriptions(items=(vessel, phleb, phleb2), image_descriptors=phleb_case["image"]),
        context=None,
        params=RulesParams(),
    )
    assert [f.finding_id for f in a.findings] == [1, 2, 3]
    top = a.categories[0]
    assert top.name.value == "phlebolith" and top.finding_ids == (2, 3)
    arterial = next(c for c in a.categories if c.name.value == "vascular_arterial")
    assert 1 in arterial.finding_ids
    # the image score is the mean of the findings' scores
    per = [next(c.score for c in f.categories if c.name is top.name) for f in a.findings[1:]]
    assert top.score == pytest.approx(sum(per) / 3, abs=0.01)
    assert any(e.startswith("finding 2:") for e in top.evidence)


def test_report_limits_respected() -> None:
    case = _case("amorphous clump, no context")
    a = rank_case(case, params=RulesParams(max_categories=2, min_score=0.0))
    assert len(a.findings[0].categories) == 2
    b = rank_case(case, params=RulesParams(max_categories=5, min_score=0.99))
    assert len(b.findings[0].categories) == 1  # the top one is always reported


def test_numpy_descriptor_values_are_accepted() -> None:
    np = pytest.importorskip("numpy")
    case = copy.deepcopy(_case("tram-track lines along a leg artery"))
    case["descriptors"] = {
        "parallel_pair": np.bool_(True),
        "line_spacing_mm": np.float32(3.5),
        "linearity": np.float64(0.92),
        "extent_mm": np.float64(90.0),
        "n_particles": np.int64(2),
    }
    top = rank_case(case).findings[0].categories[0]
    assert top.name.value == "vascular_arterial"
    assert "parallel tram-track lines 3.5 mm apart" in " ".join(top.evidence)


def test_each_pattern_alone_maps_first_to_its_domain_category() -> None:
    """DOMAIN.md's 'maps first to', with only the pattern and an extra-articular site."""
    table = load_table()
    first = {
        Pattern.AMORPHOUS: "dystrophic",
        Pattern.FINELY_SPECKLED: "metastatic",
        Pattern.GLOBULAR_PERIARTICULAR: "tumoral_calcinosis",
        Pattern.CHONDRAL_LINE: "chondrocalcinosis_cppd",
    }
    for pattern, expected in first.items():
        d = Description(
            detection_id=1,
            pattern=pattern,
            pattern_scores={pattern: 1.0},
            descriptors={},
            location=Location(nearest_joint="elbow", distance_to_joint_mm=20.0),
            area_mm2=10.0,
            centroid_rc=(0.0, 0.0),
        )
        ranked = score_finding(d, image={}, context=None, table=table)
        assert ranked[0].name.value == expected, pattern


# ----------------------------------------------------------------- table schema


def _table() -> dict[str, Any]:
    return tomllib.loads((models_dir() / "rules.toml").read_text(encoding="utf-8"))


def test_shipped_table_is_valid_and_every_rule_has_a_source() -> None:
    t = load_table("rules.toml")
    assert set(t.categories) == set(Category)
    assert all(r.source and r.evidence for r in t.rules)
    assert all(c.source and c.prevalence_text for c in t.categories.values())
    for spec in t.categories.values():
        assert sum(spec.patterns.values()) == pytest.approx(1.0)


def test_table_is_cached_per_path(tmp_path: Path) -> None:
    assert load_table("rules.toml") is load_table(str(models_dir() / "rules.toml"))
    copy_path = tmp_path / "site_rules.toml"
    copy_path.write_bytes((models_dir() / "rules.toml").read_bytes())
    assert load_table(str(copy_path)) is not load_table("rules.toml")


def test_rules_table_param_via_config(tmp_path: Path) -> None:
    data = (models_dir() / "rules.toml").read_text(encoding="utf-8")
    site = tmp_path / "site.toml"
    # a site that trusts trauma less: same table with one LR changed
    site.write_text(data.replace("lr = { dystrophic = 3.0 }", "lr = { dystrophic = 1.0 }"))
    cfg = load_config(overrides=[f"rules.table='{site}'"])
    case = _case("amorphous clump, normal labs, trauma")
    a = rank_case(case, params=cfg.rules)
    assert "history of trauma" in " ".join(a.findings[0].categories[0].evidence)
    assert "(x1)" in " ".join(a.findings[0].categories[0].evidence)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda t: t.update(colour="red"), r"unknown key\(s\) colour; valid keys: schema"),
        (lambda t: t.update(schema="x/2"), r"schema = 'x/2'; expected 'calcimg.rules/1'"),
        (
            lambda t: t["categories"].pop("phlebolith"),
            r"\[categories\] lacks phlebolith",
        ),
        (
            lambda t: t["categories"]["dystrophic"].update(prior=0.9),
            r"\[categories.dystrophic\]: unknown key\(s\) prior; valid keys: label, prevalence",
        ),
        (
            lambda t: t["categories"]["dystrophic"]["patterns"].pop("vascular"),
            r"missing \['vascular'\]",
        ),
        (
            lambda t: t["rules"][0].update(when={"x": 1}),
            r"unknown key\(s\) when; valid keys: id, finding, image, context",
        ),
        (
            lambda t: t["rules"][0]["finding"].update(ring_and_ark=True),
            r"unknown finding variable 'ring_and_ark'; valid finding variables: pattern",
        ),
        (
            lambda t: t["rules"][0]["lr"].update(gout=2.0),
            r"unknown category 'gout'; valid categories: dystrophic",
        ),
        (
            lambda t: t["rules"][0].update(finding={"extent_mm": {"above": 3}}),
            r"unknown operator 'above'; valid operators: gt, ge",
        ),
        (
            lambda t: t["rules"][0].update(finding={"pattern": "tram_track"}),
            r"unknown pattern 'tram_track'; valid patterns: amorphous",
        ),
        (
            lambda t: t["rules"][0].update(finding={"septa": {"gt": 1}}),
            r"operator 'gt' does not apply to a bool variable",
        ),
        (
            lambda t: t["rules"][0].update(evidence="{ca_x_p} high"),
            r"unknown field \{ca_x_p\} in evidence template",
        ),
        (
            lambda t: t["rules"][0]["lr"].update(metastatic=0),
            r"lr.metastatic = 0; expected a number > 0",
        ),
        (
            lambda t: t["rules"].append(dict(t["rules"][0])),
            r"duplicate rule id",
        ),
        (
            lambda t: t["rules"][0].pop("source"),
            r"missing required key 'source'",
        ),
    ],
    ids=[
        "unknown top key",
        "schema",
        "missing category",
        "unknown category key",
        "missing pattern likelihood",
        "unknown rule key",
        "unknown variable",
        "unknown lr category",
        "unknown operator",
        "unknown pattern",
        "operator type",
        "template field",
        "zero lr",
        "duplicate id",
        "missing source",
    ],
)
def test_table_schema_errors(mutate: Any, match: str) -> None:
    t = _table()
    mutate(t)
    with pytest.raises(ConfigError, match=match):
        parse_table(t, where="test.toml")


def test_missing_table_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"rules.table = 'nope.toml': no such file"):
        rank(
            Descriptions(items=(make_description(GOLDEN[0]),)),
            context=None,
            params=RulesParams(table="nope.toml"),
        )


def test_rules_params_validation() -> None:
    with pytest.raises(ConfigError, match=r"rules.max_categories = 0 is out of range"):
        RulesParams(max_categories=0)
    with pytest.raises(ConfigError, match=r"rules.min_score = 1.5 is out of range"):
        RulesParams(min_score=1.5)
