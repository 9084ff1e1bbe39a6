"""The result contract (``calcimg.result/1``) as frozen dataclasses.

One :class:`Result` per analysed image (per frame for multi-frame objects). ``to_dict``
gives exactly the JSON object of ``shared/CONTRACT.md``; ``from_dict`` reads it back so
that ``Result.from_dict(r.to_dict()) == r``. The JSON Schema shipped in
``calcimg/schema/result.schema.json`` is the machine-readable form of the same contract.

Fields beyond the contract's version 1 are additions only (allowed by the contract):
``confounders``, ``params_hash``, ``input_hash``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "SCHEMA_ID",
    "Category",
    "CategoryScore",
    "Confounder",
    "ErrorInfo",
    "Finding",
    "ImageInfo",
    "Location",
    "Pattern",
    "Result",
    "Status",
    "result_schema",
    "validate_result_dict",
]

SCHEMA_ID = "calcimg.result/1"


class Status(StrEnum):
    """What happened to one input."""

    OK = "ok"
    SKIPPED = "skipped"
    ERROR = "error"


class Pattern(StrEnum):
    """The five calcification patterns of ``DOMAIN.md``."""

    AMORPHOUS = "amorphous"
    FINELY_SPECKLED = "finely_speckled"
    GLOBULAR_PERIARTICULAR = "globular_periarticular"
    VASCULAR = "vascular"
    CHONDRAL_LINE = "chondral_line"


class Category(StrEnum):
    """The categories the rule layer ranks (``CONTRACT.md``)."""

    DYSTROPHIC = "dystrophic"
    METASTATIC = "metastatic"
    CALCINOSIS_CIRCUMSCRIPTA = "calcinosis_circumscripta"
    CALCINOSIS_UNIVERSALIS = "calcinosis_universalis"
    TUMORAL_CALCINOSIS = "tumoral_calcinosis"
    CHONDROCALCINOSIS_CPPD = "chondrocalcinosis_cppd"
    SYNOVIAL_CHONDROMATOSIS = "synovial_chondromatosis"
    VASCULAR_ARTERIAL = "vascular_arterial"
    PHLEBOLITH = "phlebolith"
    CALCIPHYLAXIS = "calciphylaxis"
    IATROGENIC = "iatrogenic"


def _tuple_f(values: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """Where a finding lies relative to joints and bone (mm)."""

    nearest_joint: str | None = None
    distance_to_joint_mm: float | None = None
    intra_articular: bool = False
    distance_to_bone_mm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "nearest_joint": self.nearest_joint,
            "distance_to_joint_mm": self.distance_to_joint_mm,
            "intra_articular": self.intra_articular,
            "distance_to_bone_mm": self.distance_to_bone_mm,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Location:
        return cls(
            nearest_joint=d.get("nearest_joint"),
            distance_to_joint_mm=d.get("distance_to_joint_mm"),
            intra_articular=bool(d.get("intra_articular", False)),
            distance_to_bone_mm=d.get("distance_to_bone_mm"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoryScore:
    """A ranked category with its score in [0, 1] and the evidence that produced it."""

    name: Category
    score: float
    evidence: tuple[str, ...] = ()
    finding_ids: tuple[int, ...] = ()

    def to_dict(self, *, with_findings: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": str(self.name),
            "score": self.score,
            "evidence": list(self.evidence),
        }
        if with_findings:
            d["finding_ids"] = list(self.finding_ids)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoryScore:
        return cls(
            name=Category(d["name"]),
            score=float(d["score"]),
            evidence=tuple(d.get("evidence", ())),
            finding_ids=tuple(int(i) for i in d.get("finding_ids", ())),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Confounder:
    """A dense object that is not calcification (marker, metal, text, ...)."""

    kind: str
    bbox: tuple[int, int, int, int]
    area_mm2: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "bbox": list(self.bbox), "area_mm2": self.area_mm2}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Confounder:
        b = d["bbox"]
        return cls(
            kind=str(d["kind"]),
            bbox=(int(b[0]), int(b[1]), int(b[2]), int(b[3])),
            area_mm2=float(d["area_mm2"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One soft-tissue calcification finding (a lesion, possibly of many particles)."""

    id: int
    pattern: Pattern
    pattern_scores: Mapping[str, float]
    confidence: float
    bbox: tuple[int, int, int, int]
    """(row_min, col_min, row_max, col_max) in pixels, max exclusive."""
    centroid_rc: tuple[float, float]
    area_mm2: float
    n_particles: int
    descriptors: Mapping[str, Any] = field(default_factory=dict)
    location: Location = field(default_factory=Location)
    categories: tuple[CategoryScore, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pattern": str(self.pattern),
            "pattern_scores": {str(k): float(v) for k, v in self.pattern_scores.items()},
            "confidence": self.confidence,
            "bbox": list(self.bbox),
            "centroid_rc": list(self.centroid_rc),
            "area_mm2": self.area_mm2,
            "n_particles": self.n_particles,
            "descriptors": dict(self.descriptors),
            "location": self.location.to_dict(),
            "categories": [c.to_dict() for c in self.categories],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Finding:
        b = d["bbox"]
        c = d["centroid_rc"]
        return cls(
            id=int(d["id"]),
            pattern=Pattern(d["pattern"]),
            pattern_scores={str(k): float(v) for k, v in d["pattern_scores"].items()},
            confidence=float(d["confidence"]),
            bbox=(int(b[0]), int(b[1]), int(b[2]), int(b[3])),
            centroid_rc=(float(c[0]), float(c[1])),
            area_mm2=float(d["area_mm2"]),
            n_particles=int(d["n_particles"]),
            descriptors=dict(d.get("descriptors", {})),
            location=Location.from_dict(d.get("location", {})),
            categories=tuple(CategoryScore.from_dict(x) for x in d.get("categories", ())),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageInfo:
    """Geometry and pixel provenance of the analysed image."""

    rows: int
    columns: int
    pixel_spacing_mm: tuple[float, float]
    spacing_source: str
    calibrated: bool
    transforms: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "columns": self.columns,
            "pixel_spacing_mm": list(self.pixel_spacing_mm),
            "spacing_source": self.spacing_source,
            "calibrated": self.calibrated,
            "transforms": list(self.transforms),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ImageInfo:
        s = d["pixel_spacing_mm"]
        return cls(
            rows=int(d["rows"]),
            columns=int(d["columns"]),
            pixel_spacing_mm=(float(s[0]), float(s[1])),
            spacing_source=str(d["spacing_source"]),
            calibrated=bool(d["calibrated"]),
            transforms=tuple(d.get("transforms", ())),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorInfo:
    """Why an input was not analysed: the error class name and its message."""

    type: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        return cls(type=type(exc).__name__, message=str(exc))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ErrorInfo:
        return cls(type=str(d["type"]), message=str(d["message"]))


TIMING_STAGES = ("decode", "anatomy", "detect", "describe", "rules")


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """One line of ``results.jsonl``: the outcome for one image (or frame)."""

    source: str
    status: Status
    frame: int = 0
    error: ErrorInfo | None = None
    calcimg_version: str = ""
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    modality: str | None = None
    body_part: str | None = None
    image: ImageInfo | None = None
    findings: tuple[Finding, ...] = ()
    categories: tuple[CategoryScore, ...] = ()
    differential: tuple[str, ...] = ()
    workup: tuple[str, ...] = ()
    timing_ms: Mapping[str, float] = field(default_factory=dict)
    confounders: tuple[Confounder, ...] = ()
    params_hash: str | None = None
    input_hash: str | None = None
    label_mask: Any = field(default=None, compare=False, repr=False)
    """In memory only (never serialised): int32 (rows, columns) array whose value is the
    finding id at each finding pixel, 0 elsewhere; None for results read from JSON.
    Overlay, DICOM SEG and feature writers draw from it."""
    anatomy_labels: Any = field(default=None, compare=False, repr=False)
    """In memory only (never serialised): uint8 (rows, columns) anatomy region codes
    (:class:`calcimg.anatomy.Region`) the findings were found against; None for results
    read from JSON. Feature extraction measures soft-tissue burden from it."""

    @property
    def flag(self) -> bool:
        """True when the image has at least one finding."""
        return len(self.findings) > 0

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON object (``shared/CONTRACT.md``), keys in contract order."""
        return {
            "schema": SCHEMA_ID,
            "source": self.source,
            "frame": self.frame,
            "status": str(self.status),
            "error": None if self.error is None else self.error.to_dict(),
            "calcimg_version": self.calcimg_version,
            "sop_instance_uid": self.sop_instance_uid,
            "study_instance_uid": self.study_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "modality": self.modality,
            "body_part": self.body_part,
            "image": None if self.image is None else self.image.to_dict(),
            "flag": self.flag,
            "findings": [f.to_dict() for f in self.findings],
            "categories": [c.to_dict(with_findings=True) for c in self.categories],
            "differential": list(self.differential),
            "workup": list(self.workup),
            "timing_ms": {k: float(self.timing_ms.get(k, 0.0)) for k in _timing_keys(self)},
            "confounders": [c.to_dict() for c in self.confounders],
            "params_hash": self.params_hash,
            "input_hash": self.input_hash,
        }

    def to_json(self) -> str:
        """One compact JSON line (no trailing newline)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Result:
        if d.get("schema") != SCHEMA_ID:
            raise ValueError(f"expected schema {SCHEMA_ID!r}; found {d.get('schema')!r}")
        return cls(
            source=str(d["source"]),
            status=Status(d["status"]),
            frame=int(d.get("frame", 0)),
            error=None if d.get("error") is None else ErrorInfo.from_dict(d["error"]),
            calcimg_version=str(d.get("calcimg_version", "")),
            sop_instance_uid=d.get("sop_instance_uid"),
            study_instance_uid=d.get("study_instance_uid"),
            series_instance_uid=d.get("series_instance_uid"),
            modality=d.get("modality"),
            body_part=d.get("body_part"),
            image=None if d.get("image") is None else ImageInfo.from_dict(d["image"]),
            findings=tuple(Finding.from_dict(f) for f in d.get("findings", ())),
            categories=tuple(CategoryScore.from_dict(c) for c in d.get("categories", ())),
            differential=tuple(d.get("differential", ())),
            workup=tuple(d.get("workup", ())),
            timing_ms={str(k): float(v) for k, v in d.get("timing_ms", {}).items()},
            confounders=tuple(Confounder.from_dict(c) for c in d.get("confounders", ())),
            params_hash=d.get("params_hash"),
            input_hash=d.get("input_hash"),
        )


def _timing_keys(result: Result) -> list[str]:
    extra = [k for k in result.timing_ms if k not in TIMING_STAGES]
    return [*TIMING_STAGES, *extra]


@cache
def result_schema() -> dict[str, Any]:
    """The JSON Schema of one result line, as shipped in the package."""
    text = resources.files("calcimg").joinpath("schema/result.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_result_dict(d: Mapping[str, Any]) -> None:
    """Validate one result object against the shipped JSON Schema.

    Raises
    ------
    jsonschema.ValidationError
        When ``d`` does not follow the contract.
    """
    _validator().validate(d)


@cache
def _validator() -> Any:
    import jsonschema

    cls = jsonschema.validators.validator_for(result_schema())
    cls.check_schema(result_schema())
    return cls(result_schema())
