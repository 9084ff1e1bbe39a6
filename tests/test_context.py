"""Clinical context: parsing, units, validation, CSV, sidecars and the pipeline hook."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.data import get_testdata_file

import calcimg
from calcimg.cli.common import add_config_options, context_from_args
from calcimg.context import (
    ClinicalContext,
    ContextResolver,
    load_context_csv,
    load_context_file,
    sidecar_paths,
)
from calcimg.errors import ContextError
from calcimg.radiograph import Radiograph, SpacingSource

CONTRACT_EXAMPLE = {
    "serum_calcium_mg_dl": 10.9,
    "serum_phosphate_mg_dl": 7.4,
    "albumin_g_dl": 3.1,
    "alkaline_phosphatase_u_l": 160,
    "renal_failure": True,
    "dialysis": True,
    "connective_tissue_disease": "scleroderma",
    "trauma": False,
    "calcium_or_phosphate_administration": False,
    "age_years": 64,
}


def test_contract_example_round_trips_with_derived_values() -> None:
    ctx = ClinicalContext.from_dict(CONTRACT_EXAMPLE)
    assert ctx.to_dict() == {
        **CONTRACT_EXAMPLE,
        "alkaline_phosphatase_u_l": 160.0,
        "age_years": 64.0,
    }
    assert ctx.ca_x_p_mg2_dl2 == pytest.approx(80.66)
    # Payne: 10.9 + 0.8 * (4.0 - 3.1) = 11.62
    assert ctx.corrected_calcium_mg_dl == pytest.approx(11.62)
    derived = {d.name: d for d in ctx.derived()}
    assert derived["ca_x_p_mg2_dl2"].unit == "mg2/dL2"
    assert "70" in derived["ca_x_p_mg2_dl2"].source
    assert "Payne" in derived["corrected_calcium_mg_dl"].definition


def test_si_units_convert_to_conventional() -> None:
    ctx = ClinicalContext.from_dict(
        {"serum_calcium_mmol_l": 2.5, "serum_phosphate_mmol_l": 1.2, "albumin_g_l": 38}
    )
    assert ctx.serum_calcium_mg_dl == pytest.approx(10.02)
    assert ctx.serum_phosphate_mg_dl == pytest.approx(3.7164)
    assert ctx.albumin_g_dl == pytest.approx(3.8)
    assert ctx.ca_x_p_mg2_dl2 == pytest.approx(10.02 * 3.7164)


def test_empty_and_null_values_are_unknown() -> None:
    ctx = ClinicalContext.from_dict(
        {"serum_calcium_mg_dl": None, "connective_tissue_disease": None}
    )
    assert ctx.is_empty and ctx.ca_x_p_mg2_dl2 is None and ctx.corrected_calcium_mg_dl is None
    assert ctx.derived() == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Systemic sclerosis", "systemic_sclerosis"),
        ("SLE", "lupus"),
        ("dermatomyositis", "dermatomyositis"),
        (True, "unspecified"),
        (False, None),
        ("none", None),
    ],
    ids=["spaces and case", "alias", "plain", "true", "false", "none"],
)
def test_connective_tissue_disease_normalised(value: Any, expected: str | None) -> None:
    ctx = ClinicalContext.from_dict({"connective_tissue_disease": value})
    assert ctx.connective_tissue_disease == expected


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (
            {"serum_calcium": 10.0},
            r"unknown key\(s\) serum_calcium; known keys: serum_calcium_mg_dl, "
            r"serum_phosphate_mg_dl, .*serum_calcium_mmol_l",
        ),
        (
            {"serum_calcium_mg_dl": 10.0, "serum_calcium_mmol_l": 2.5},
            r"both serum_calcium_mg_dl and serum_calcium_mmol_l are given; expected one value",
        ),
        (
            {"serum_calcium_mg_dl": 2.5 / 4.008},
            r"serum_calcium_mg_dl = 0.62\d* is outside the plausible range; expected 2-25 mg/dL",
        ),
        (
            {"serum_calcium_mmol_l": 10.0},
            r"serum_calcium_mmol_l = 10.0 is outside the plausible range; expected "
            r"0.499-6.24 mmol/L",
        ),
        ({"albumin_g_l": 3.5}, r"albumin_g_l = 3.5 is outside .* expected 5-70 g/L"),
        ({"serum_phosphate_mg_dl": "high"}, r"serum_phosphate_mg_dl = 'high'; expected a number"),
        ({"age_years": 130}, r"age_years = 130 is outside the plausible range; expected 0-120"),
        ({"renal_failure": "maybe"}, r"renal_failure = 'maybe'; expected true or false"),
        ({"dialysis": 1.0}, r"dialysis = 1.0; expected true or false"),
        (
            {"connective_tissue_disease": "gout"},
            r"connective_tissue_disease = 'gout' is not a known value; expected one of "
            r"scleroderma, .*dermatomyositis",
        ),
        ({"connective_tissue_disease": 3}, r"connective_tissue_disease = 3; expected a name"),
        ({"alkaline_phosphatase_u_l": float("nan")}, r"alkaline_phosphatase_u_l = nan is outside"),
    ],
    ids=[
        "unknown key",
        "both units",
        "calcium in mmol as mg",
        "SI out of range",
        "albumin g/dL as g/L",
        "not a number",
        "age",
        "bool text",
        "bool number",
        "ctd unknown",
        "ctd type",
        "nan",
    ],
)
def test_context_errors(data: dict[str, Any], match: str) -> None:
    with pytest.raises(ContextError, match=match):
        ClinicalContext.from_dict(data, where="ctx.json")


def test_constructor_validates_too() -> None:
    with pytest.raises(ContextError, match=r"serum_phosphate_mg_dl = 40 is outside"):
        ClinicalContext(serum_phosphate_mg_dl=40)


def test_load_context_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match=r"context file not found"):
        load_context_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ContextError, match=r"bad.json: not valid JSON"):
        load_context_file(bad)
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    with pytest.raises(ContextError, match=r"expected a JSON object .*; found list"):
        load_context_file(arr)
    unk = tmp_path / "unk.json"
    unk.write_text('{"calcium": 9}')
    with pytest.raises(ContextError, match=r"unk.json: unknown key\(s\) calcium"):
        load_context_file(unk)


CSV = (
    (
        "sop_instance_uid,file,serum_calcium_mmol_l,serum_phosphate_mg_dl,renal_failure,"
        "connective_tissue_disease,age_years\n"
    )
    + """1.2.3.4,,2.7,7.0,true,,70
,knee.dcm,,,,scleroderma,
,sub/hip.dcm,2.3,,false,,
"""
)


def test_csv_rows_by_uid_and_file(tmp_path: Path) -> None:
    path = tmp_path / "ctx.csv"
    path.write_text(CSV)
    table = load_context_csv(path)
    row = table.lookup(sop_instance_uid="1.2.3.4", source="whatever.dcm")
    assert row is not None and row.renal_failure is True and row.age_years == 70
    assert row.serum_calcium_mg_dl == pytest.approx(2.7 * 4.008)
    assert row.connective_tissue_disease is None  # empty cell = unknown
    knee = table.lookup(sop_instance_uid="9.9", source="/data/batch/knee.dcm")
    assert knee is not None and knee.connective_tissue_disease == "scleroderma"
    assert knee.serum_calcium_mg_dl is None
    hip = table.lookup(sop_instance_uid=None, source="sub/hip.dcm")
    assert hip is not None and hip.renal_failure is False
    assert table.lookup(sop_instance_uid=None, source="other/hip.dcm") is None
    assert table.lookup(sop_instance_uid="5.5", source="ankle.dcm") is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "uid,serum_calcium_mg_dl\n1,9\n",
            r"no key column; expected a 'sop_instance_uid' or 'file'",
        ),
        (
            "file,calcium\nknee.dcm,9\n",
            r"unknown column\(s\) calcium; known columns: sop_instance_uid, file, "
            r"serum_calcium_mg_dl",
        ),
        ("file,serum_calcium_mg_dl\nknee.dcm,0.5\n", r"ctx.csv line 2: serum_calcium_mg_dl = 0.5"),
        ("file,age_years\nknee.dcm,1\nknee.dcm,2\n", r"line 3: file knee.dcm appears twice"),
        ("file,sop_instance_uid,age_years\n,,3\n", r"line 2: expected a sop_instance_uid or file"),
        (
            "file,serum_calcium_mg_dl,serum_calcium_mmol_l\nknee.dcm,9,2.2\n",
            r"line 2: both serum_calcium_mg_dl and serum_calcium_mmol_l",
        ),
    ],
    ids=["no key column", "unknown column", "range", "duplicate", "no key", "both units"],
)
def test_csv_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "ctx.csv"
    path.write_text(text)
    with pytest.raises(ContextError, match=match):
        load_context_csv(path)


def test_csv_file_name_matching(tmp_path: Path) -> None:
    path = tmp_path / "ctx.csv"
    path.write_text("file,age_years\na/knee.dcm,30\nknee.dcm,40\nb/knee.dcm,50\n")
    table = load_context_csv(path)
    assert table.lookup(sop_instance_uid=None, source="a/knee.dcm").age_years == 30  # type: ignore[union-attr]
    assert table.lookup(sop_instance_uid=None, source="/elsewhere/knee.dcm").age_years == 40  # type: ignore[union-attr]


def test_resolver_precedence_sidecar_then_csv_then_default(tmp_path: Path) -> None:
    image = tmp_path / "knee.dcm"
    image.write_bytes(b"")
    other = tmp_path / "hip.dcm"
    csv_path = tmp_path / "ctx.csv"
    csv_path.write_text("file,age_years\nknee.dcm,40\nhip.dcm,50\n")
    default = ClinicalContext(age_years=20.0)
    resolver = ContextResolver(default=default, table=load_context_csv(csv_path))
    assert resolver.resolve(source=str(image), sop_instance_uid=None).age_years == 40  # type: ignore[union-attr]
    assert resolver.resolve(source=str(tmp_path / "ankle.dcm"), sop_instance_uid=None) is default
    stem_sidecar, name_sidecar = sidecar_paths(str(image))
    assert stem_sidecar.name == "knee.context.json" and name_sidecar.name == "knee.dcm.context.json"
    stem_sidecar.write_text(json.dumps({"age_years": 60, "dialysis": True}))
    got = resolver.resolve(source=str(image), sop_instance_uid=None)
    assert got is not None and got.age_years == 60 and got.dialysis is True
    # sidecar for the other image under its full-name form
    sidecar_paths(str(other))[1].write_text('{"trauma": true}')
    assert resolver.resolve(source=str(other), sop_instance_uid=None) == ClinicalContext(
        trauma=True
    )
    no_sidecars = ContextResolver(default=default, table=load_context_csv(csv_path), sidecars=False)
    assert no_sidecars.resolve(source=str(image), sop_instance_uid=None).age_years == 40  # type: ignore[union-attr]
    name_sidecar.write_text("{}")
    with pytest.raises(ContextError, match=r"two sidecar context files"):
        resolver.resolve(source=str(image), sop_instance_uid=None)


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_config_options(p)
    return p.parse_args(argv)


def test_context_from_args_builds_resolver(tmp_path: Path) -> None:
    ctx_file = tmp_path / "all.json"
    ctx_file.write_text('{"serum_calcium_mg_dl": 9.5}')
    csv_path = tmp_path / "batch.csv"
    csv_path.write_text("sop_instance_uid,serum_phosphate_mg_dl\n1.2.3,8.0\n")
    resolver = context_from_args(
        _args(["--context", str(ctx_file), "--context-csv", str(csv_path), "--no-sidecars"])
    )
    assert isinstance(resolver, ContextResolver) and resolver.sidecars is False
    assert resolver.resolve(source=None, sop_instance_uid="1.2.3") == ClinicalContext(
        serum_phosphate_mg_dl=8.0
    )
    assert resolver.resolve(source=None, sop_instance_uid="4.5") == ClinicalContext(
        serum_calcium_mg_dl=9.5
    )
    empty = context_from_args(_args([]))
    assert empty.resolve(source=None, sop_instance_uid=None) is None
    with pytest.raises(ContextError, match=r"missing.csv: context CSV not found"):
        context_from_args(_args(["--context-csv", str(tmp_path / "missing.csv")]))


# ----------------------------------------------------------------- pipeline hook

RG3 = get_testdata_file("RG3_UNCR.dcm")


def _small_radiograph(uid: str = "1.2.3.4.5", source: str = "small.dcm") -> Radiograph:
    """A 256 x 256 film (noisy soft tissue, one bone band, air margin): milliseconds."""
    rng = np.random.default_rng(0)
    pixels = 800.0 + 20.0 * rng.standard_normal((256, 256))
    pixels[:, 100:150] += 1500.0
    pixels[:8, :] = 50.0
    return Radiograph(
        pixels=pixels.astype(np.float32),
        pixel_spacing_mm=(0.2, 0.2),
        spacing_source=SpacingSource.PIXEL_SPACING,
        calibrated=True,
        source=source,
        sop_instance_uid=uid,
    )


def test_analyze_radiograph_calls_resolver_with_the_radiograph() -> None:
    seen: list[Radiograph] = []

    def resolver(rg: Radiograph) -> ClinicalContext | None:
        seen.append(rg)
        return ClinicalContext(age_years=50.0)

    rg = _small_radiograph()
    r = calcimg.analyze_radiograph(rg, context=resolver)
    assert r.status.value == "ok"
    assert seen == [rg]


def test_resolver_matches_csv_row_by_sop_instance_uid(tmp_path: Path) -> None:
    csv_path = tmp_path / "batch.csv"
    csv_path.write_text("sop_instance_uid,age_years\n1.2.3.4.5,33\n")
    resolver = ContextResolver(table=load_context_csv(csv_path))
    got: list[ClinicalContext | None] = []

    def spy(rg: Radiograph) -> ClinicalContext | None:
        ctx = resolver(rg)
        got.append(ctx)
        return ctx

    assert calcimg.analyze_radiograph(_small_radiograph(), context=spy).status.value == "ok"
    assert calcimg.analyze_radiograph(_small_radiograph("9.9"), context=spy).status.value == "ok"
    assert got == [ClinicalContext(age_years=33.0), None]


def test_bad_sidecar_is_an_error_result_not_an_exception(tmp_path: Path) -> None:
    image = tmp_path / "leg.dcm"
    image.write_bytes(Path(RG3).read_bytes())
    (tmp_path / "leg.context.json").write_text('{"calcium": 9}')
    results = list(calcimg.analyze_file(str(image), context=ContextResolver()))
    assert len(results) == 1
    r = results[0]
    assert r.status.value == "error" and r.error is not None
    assert r.error.type == "ContextError" and "unknown key(s) calcium" in r.error.message
    assert r.sop_instance_uid is not None  # identity kept for the batch report


def test_bad_mapping_context_raises_before_reading() -> None:
    with pytest.raises(ContextError, match=r"unknown key\(s\) calcium"):
        calcimg.analyze(RG3, context={"calcium": 9})
    with pytest.raises(ContextError, match=r"context = 42; expected a ClinicalContext"):
        calcimg.analyze(RG3, context=42)  # type: ignore[arg-type]


def test_resolver_returning_wrong_type_is_an_error_result() -> None:
    r = calcimg.analyze_radiograph(
        _small_radiograph(),
        context=lambda rg: {"age_years": 3},  # type: ignore[arg-type,return-value]
    )
    assert r.status.value == "error" and r.error is not None
    assert "expected a ClinicalContext or None" in r.error.message
