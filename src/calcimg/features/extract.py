"""Feature rows for images: detector findings or user masks, with provenance.

:func:`iter_rows` is the engine behind :func:`calcimg.extract_features`,
:func:`calcimg.image_features` and ``calcimg features``. For each input it either runs
the pipeline (``analyze_radiograph``) and measures the findings of
``Result.label_mask``, or reads a user's label mask and measures its regions; the
region features are :func:`~calcimg.features.region.region_features` in both cases.

Each input gives, per frame, its finding rows (one per region) and one image row. A
bad input never stops a run: it becomes one row with ``status`` and ``error``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from calcimg import __version__
from calcimg.anatomy import Region, map_anatomy
from calcimg.config import Config, load_config
from calcimg.context import ClinicalContext
from calcimg.errors import CalcimgError, InputError, NotAnImageError
from calcimg.features.masks import read_label_mask
from calcimg.features.pseudonym import Pseudonymizer
from calcimg.features.region import FeatureParams, region_features
from calcimg.ingest import iter_inputs, iter_radiographs
from calcimg.pipeline import ContextFn, ContextLike, analyze_radiograph
from calcimg.radiograph import Radiograph
from calcimg.result import Category, Finding, Pattern, Result, Status

__all__ = [
    "FrameRows",
    "Job",
    "Settings",
    "file_sha256",
    "image_row",
    "iter_frame_rows",
    "jobs_from_inputs",
    "params_hash",
    "read_batch_csv",
]

log = logging.getLogger(__name__)

ImageSource = str | os.PathLike[str] | Dataset
_VOLUMES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


@dataclass(frozen=True, slots=True)
class Job:
    """One input: an image, optionally its label mask, and columns to copy to its rows."""

    image: ImageSource
    mask: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything a worker needs besides the job (picklable for ``--jobs``)."""

    config: Config
    params: FeatureParams
    context: ClinicalContext | ContextFn | None = None
    """A ClinicalContext, or a picklable callable ``Radiograph -> ClinicalContext | None``
    (the CLI's per-image resolver of sidecar files and context tables)."""
    image_level: bool = True
    pseudonymize: str | None = None


@dataclass(frozen=True, slots=True)
class FrameRows:
    """The rows of one frame (or of one failed input)."""

    findings: list[dict[str, Any]]
    """One row per region; one row without ``finding_id`` if there is none."""
    image: dict[str, Any]
    n_regions: int
    ok: bool


def params_hash(config: Config, params: FeatureParams) -> str:
    """SHA-256 (16 hex) of the pipeline's parameters plus the feature parameters."""
    text = json.dumps(
        {"config": config.to_dict(), "features": params.to_dict()},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (the same digest ingest records as ``input_hash``)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------ inputs


def read_batch_csv(path: str | os.PathLike[str]) -> list[Job]:
    """Jobs from a pyradiomics-style batch CSV.

    The CSV has an ``Image`` column, an optional ``Mask`` column, and any other columns,
    which are copied unchanged into every output row of that image. Relative paths are
    relative to the CSV file's folder.

    Raises
    ------
    InputError
        No ``Image`` column, an empty ``Image`` cell, or a column that would overwrite
        one of calcimg's own.
    """
    import csv

    from calcimg.features.registry import FEATURES

    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or [])
            rows = list(reader)
    except FileNotFoundError:
        raise InputError(f"{p}: batch CSV not found") from None
    if "Image" not in fields:
        raise InputError(
            f"{p}: batch CSV has columns {fields}; expected an 'Image' column (and "
            "optionally 'Mask') like pyradiomics' batch mode"
        )
    own = {f.name for f in FEATURES}
    clash = sorted(c for c in fields if c not in ("Image", "Mask") and c in own)
    if clash:
        raise InputError(
            f"{p}: batch CSV column(s) {clash} clash with calcimg's own output columns; rename them"
        )
    jobs = []
    for i, row in enumerate(rows, start=2):
        image = (row.get("Image") or "").strip()
        if not image:
            raise InputError(f"{p}, line {i}: empty 'Image' cell")
        mask = (row.get("Mask") or "").strip() or None
        extra = {k: v for k, v in row.items() if k not in ("Image", "Mask") and k is not None}
        jobs.append(
            Job(
                image=str(_relative_to(p.parent, image)),
                mask=None if mask is None else str(_relative_to(p.parent, mask)),
                extra=extra,
            )
        )
    return jobs


def _relative_to(folder: Path, given: str) -> Path:
    q = Path(given)
    return q if q.is_absolute() else folder / q


def jobs_from_inputs(
    inputs: ImageSource | Iterable[ImageSource], *, mask: str | os.PathLike[str] | None = None
) -> list[Job]:
    """Expand files, folders, DICOMDIRs, batch CSVs and datasets into jobs.

    Raises
    ------
    InputError
        A path that does not exist, or ``mask`` given with more than one image.
    """
    single = isinstance(inputs, str | os.PathLike | Dataset)
    items: list[ImageSource] = [inputs] if single else list(inputs)  # type: ignore[list-item,arg-type]
    jobs: list[Job] = []
    for item in items:
        if isinstance(item, Dataset):
            jobs.append(Job(image=item))
        elif str(item).lower().endswith(".csv"):
            jobs.extend(read_batch_csv(item))
        else:
            jobs.extend(Job(image=str(it.path)) for it in iter_inputs([item]))
    if mask is not None:
        if len(jobs) != 1:
            raise InputError(
                f"a mask ({mask}) was given for {len(jobs)} images; give one image with "
                "--mask, or a batch CSV with a 'Mask' column"
            )
        jobs = [Job(image=jobs[0].image, mask=str(mask), extra=jobs[0].extra)]
    return jobs


# -------------------------------------------------------------------------------- rows


def _source_name(image: ImageSource) -> str:
    if isinstance(image, Dataset):
        fn = getattr(image, "filename", None)
        return str(fn) if isinstance(fn, str) and fn else "<dataset>"
    return os.fspath(image)


def _base_row(job: Job, settings: Settings, phash: str) -> dict[str, Any]:
    return {
        "source": _source_name(job.image),
        "frame": 0,
        "status": "ok",
        "error": None,
        "sop_instance_uid": None,
        "study_instance_uid": None,
        "series_instance_uid": None,
        "patient_id": None,
        "patient_name": None,
        "accession_number": None,
        "input_hash": None,
        "mask": job.mask,
        "mask_hash": None,
        "pixel_spacing_row_mm": None,
        "pixel_spacing_col_mm": None,
        "spacing_source": None,
        "calibrated": None,
        "calcimg_version": __version__,
        "params_hash": phash,
    }


def _identity(row: dict[str, Any], rg: Radiograph) -> None:
    row.update(
        frame=rg.frame,
        sop_instance_uid=rg.sop_instance_uid,
        study_instance_uid=rg.study_instance_uid,
        series_instance_uid=rg.series_instance_uid,
        patient_id=rg.patient_id,
        patient_name=rg.patient_name,
        accession_number=rg.accession_number,
        input_hash=rg.input_hash,
        pixel_spacing_row_mm=float(rg.pixel_spacing_mm[0]),
        pixel_spacing_col_mm=float(rg.pixel_spacing_mm[1]),
        spacing_source=str(rg.spacing_source),
        calibrated=bool(rg.calibrated),
    )


def _scalar(v: Any) -> Any:
    """Table-safe value: numbers, text, bools or None; anything else as JSON."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, np.generic):
        return v.item()
    return json.dumps(v, default=str, separators=(",", ":"))


def _detector_columns(f: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {"pattern": str(f.pattern), "confidence": f.confidence}
    for p in Pattern:
        out[f"pattern_score_{p.value}"] = float(f.pattern_scores.get(str(p), 0.0))
    for name, value in f.descriptors.items():
        out[f"descriptor_{name}"] = _scalar(value)
    out.update(
        nearest_joint=f.location.nearest_joint,
        distance_to_joint_mm=f.location.distance_to_joint_mm,
        intra_articular=f.location.intra_articular,
        distance_to_bone_mm=f.location.distance_to_bone_mm,
    )
    out.update(_category_columns(f.categories))
    return out


def _category_columns(categories: Sequence[Any]) -> dict[str, Any]:
    scores = {str(c.name): float(c.score) for c in categories}
    out: dict[str, Any] = {"top_category": str(categories[0].name) if categories else None}
    for c in Category:
        out[f"category_score_{c.value}"] = scores.get(c.value, 0.0)
    return out


def n_sites(centroids_mm: np.ndarray, site_distance_mm: float) -> int:
    """Distinct sites: single-linkage groups of centroids within ``site_distance_mm``."""
    n = len(centroids_mm)
    if n <= 1:
        return n
    d = np.sqrt(((centroids_mm[:, None, :] - centroids_mm[None, :, :]) ** 2).sum(axis=2))
    n_groups, _ = connected_components(csr_matrix(d <= site_distance_mm), directed=False)
    return int(n_groups)


def image_row(
    base: Mapping[str, Any],
    regions: Sequence[Mapping[str, Any]],
    rg: Radiograph,
    *,
    params: FeatureParams,
    soft_tissue_px: int | None,
    result: Result | None = None,
) -> dict[str, Any]:
    """The image-level row from an image's region rows (and its Result, if any)."""
    row = dict(base)
    row["rows"], row["columns"] = rg.shape
    row["n_findings"] = len(regions)
    if result is not None:
        for p in Pattern:
            row[f"n_findings_{p.value}"] = sum(f.pattern is p for f in result.findings)
    areas = [float(r["area_mm2"]) for r in regions]
    row["total_area_mm2"] = float(sum(areas))
    row["n_particles_total"] = int(sum(int(r["n_particles"]) for r in regions))
    cent = np.array(
        [
            [
                r["centroid_row_px"] * rg.pixel_spacing_mm[0],
                r["centroid_col_px"] * rg.pixel_spacing_mm[1],
            ]
            for r in regions
        ]
    ).reshape(-1, 2)
    row["n_sites"] = n_sites(cent, params.site_distance_mm)
    if soft_tissue_px is None:
        row["soft_tissue_area_mm2"] = None
        row["burden_mm2_per_100cm2"] = None
    else:
        st = soft_tissue_px * rg.pixel_area_mm2
        row["soft_tissue_area_mm2"] = st
        row["burden_mm2_per_100cm2"] = row["total_area_mm2"] / (st / 10_000.0) if st > 0 else None
    row["max_finding_area_mm2"] = max(areas) if areas else 0.0
    row["flag"] = len(regions) > 0
    if result is not None:
        row.update(_category_columns(result.categories))
    return row


def _soft_tissue(rg: Radiograph, config: Config, result: Result | None) -> np.ndarray:
    """bool (rows, columns): soft tissue and joint space of the anatomy map.

    The pipeline's result carries the map it used; for user masks (no pipeline run)
    the extractor maps the anatomy itself.
    """
    labels = result.anatomy_labels if result is not None else None
    if labels is None:
        labels = map_anatomy(rg, params=config.anatomy).labels
    return (labels == Region.SOFT_TISSUE) | (labels == Region.JOINT_SPACE)


def _error_rows(base: dict[str, Any], exc: BaseException) -> FrameRows:
    row = dict(base)
    row["status"] = "skipped" if isinstance(exc, NotAnImageError) else "error"
    row["error"] = f"{type(exc).__name__}: {exc}"
    return FrameRows(findings=[dict(row)], image=dict(row), n_regions=0, ok=False)


def _frame_rows(
    job: Job, rg: Radiograph, settings: Settings, base: dict[str, Any], mask_hash: str | None
) -> FrameRows:
    row = dict(base)
    _identity(row, rg)
    row["mask_hash"] = mask_hash
    params = settings.params
    result: Result | None = None
    if job.mask is None:
        result = analyze_radiograph(rg, context=settings.context, config=settings.config)  # type: ignore[arg-type,unused-ignore]
        if result.status is not Status.OK:
            row["status"] = str(result.status)
            row["error"] = None if result.error is None else result.error.message
            return FrameRows(findings=[dict(row)], image=dict(row), n_regions=0, ok=False)
        label_mask = result.label_mask
        if label_mask is None:
            label_mask = np.zeros(rg.shape, np.int32)
    else:
        label_mask = read_label_mask(
            job.mask, shape=rg.shape, sop_instance_uid=rg.sop_instance_uid, frame=rg.frame
        )
    soft: np.ndarray | None = None
    if settings.image_level or params.ring_soft_tissue_only:
        soft = _soft_tissue(rg, settings.config, result)
    ring_mask = soft if params.ring_soft_tissue_only else None
    regions = region_features(rg, label_mask, params=params, ring_mask=ring_mask)
    by_id = {f.id: f for f in result.findings} if result is not None else {}
    findings = []
    for reg in regions:
        frow = dict(row)
        frow["finding_id"] = reg["label"]
        frow.update({k: v for k, v in reg.items() if k != "label"})
        f = by_id.get(reg["label"])
        if f is not None:
            frow.update(_detector_columns(f))
        findings.append(frow)
    if not findings:
        empty = dict(row)
        empty["finding_id"] = None
        findings = [empty]
    img: dict[str, Any] = {}
    if settings.image_level:
        soft_px = None if soft is None else int(np.count_nonzero(soft))
        img = image_row(row, regions, rg, params=params, soft_tissue_px=soft_px, result=result)
    return FrameRows(findings=findings, image=img, n_regions=len(regions), ok=True)


def process_job(job: Job, settings: Settings) -> list[FrameRows]:
    """All rows of one input (every frame; masks annotate frame 0 unless 3-D).

    Never raises for a bad image or mask: those become an error row.
    """
    phash = params_hash(settings.config, settings.params)
    base = _base_row(job, settings, phash)
    base.update(job.extra)
    out: list[FrameRows] = []
    try:
        mask_hash = None if job.mask is None else file_sha256(job.mask)
    except OSError as exc:
        out = [_error_rows(base, InputError(f"{job.mask}: cannot read the mask: {exc}"))]
        return _pseudonymized(out, settings)
    if not isinstance(job.image, Dataset):
        try:
            base["input_hash"] = file_sha256(job.image)
        except OSError as exc:
            return _pseudonymized(
                [_error_rows(base, InputError(f"{job.image}: cannot read: {exc}"))], settings
            )
    try:
        for rg in iter_radiographs(job.image, params=settings.config.ingest):
            # a 2-D mask annotates the first frame; 3-D (SimpleITK) masks give one per frame
            if job.mask is not None and rg.frame > 0 and not job.mask.lower().endswith(_VOLUMES):
                break
            try:
                out.append(_frame_rows(job, rg, settings, base, mask_hash))
            except Exception as exc:  # a bad mask or a failing stage: this frame only
                if not isinstance(exc, CalcimgError):
                    log.exception("feature extraction failed on %s", base["source"])
                failed = dict(base)
                _identity(failed, rg)
                out.append(_error_rows(failed, exc))
    except CalcimgError as exc:
        out.append(_error_rows(base, exc))
    except Exception as exc:  # an unexpected reader failure must not stop a batch
        log.exception("unexpected error on %s", base["source"])
        out.append(_error_rows(base, exc))
    return _pseudonymized(out, settings)


def _pseudonymized(frames: list[FrameRows], settings: Settings) -> list[FrameRows]:
    if not settings.pseudonymize:
        return frames
    p = Pseudonymizer(settings.pseudonymize)
    return [
        FrameRows(
            findings=[p.row(r) for r in fr.findings],
            image=p.row(fr.image) if fr.image else {},
            n_regions=fr.n_regions,
            ok=fr.ok,
        )
        for fr in frames
    ]


def _process_star(args: tuple[Job, Settings]) -> list[FrameRows]:
    return process_job(*args)


def iter_frame_rows(
    jobs: Sequence[Job], settings: Settings, *, n_jobs: int = 1
) -> Iterator[tuple[Job, list[FrameRows]]]:
    """Process jobs (in input order), in ``n_jobs`` worker processes when > 1."""
    if n_jobs <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield job, process_job(job, settings)
        return
    with ProcessPoolExecutor(max_workers=n_jobs) as pool:
        results = pool.map(_process_star, [(j, settings) for j in jobs], chunksize=1)
        yield from zip(jobs, results, strict=True)


def make_settings(
    *,
    context: ContextLike,
    config: Config | None,
    params: FeatureParams | Mapping[str, Any] | None,
    image_level: bool,
    pseudonymize: str | None,
) -> Settings:
    """Validate the user's arguments into :class:`Settings`."""
    if isinstance(params, Mapping):
        params = feature_params_from(params)
    # a mapping is validated now (a caller's error raises); a ClinicalContext or a
    # per-image resolver (callable) goes to the pipeline as it is
    ctx = ClinicalContext.from_dict(context) if isinstance(context, Mapping) else context
    if pseudonymize is not None and not pseudonymize:
        raise InputError("--pseudonymize needs a non-empty salt")
    return Settings(
        config=config or load_config(),
        params=params or FeatureParams(),
        context=ctx,
        image_level=image_level,
        pseudonymize=pseudonymize,
    )


def feature_params_from(values: Mapping[str, Any]) -> FeatureParams:
    """FeatureParams from a mapping; unknown keys are errors listing the valid ones."""
    import dataclasses

    from calcimg.errors import ConfigError

    valid = {f.name: f for f in dataclasses.fields(FeatureParams)}
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join('features.' + k for k in unknown)}; valid "
            f"parameters of [features]: {', '.join(sorted(valid))}"
        )
    coerced: dict[str, Any] = {}
    for k, v in values.items():
        kind = valid[k].type
        if kind in (bool, "bool"):
            if not isinstance(v, bool):
                raise ConfigError(f"parameter features.{k} = {v!r}; expected true or false")
            coerced[k] = v
            continue
        want = int if kind in (int, "int") else float
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ConfigError(f"parameter features.{k} = {v!r}; expected a number")
        if want is int and not float(v).is_integer():
            raise ConfigError(f"parameter features.{k} = {v!r}; expected an integer")
        coerced[k] = want(v)
    return FeatureParams(**coerced)
