"""The pipeline: ingest -> anatomy -> detect -> describe -> rules, composed into results.

:func:`analyze` runs the whole chain on one image and always returns a
:class:`~calcimg.result.Result`: problems with the input become ``status`` ``"error"``
or ``"skipped"`` with the reason, so that a batch never stops on a bad file. Only
problems with the caller's own arguments (an invalid config or context) raise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import numpy as np

from calcimg import __version__
from calcimg.anatomy import AnatomyMap, map_anatomy
from calcimg.config import Config, load_config
from calcimg.context import ClinicalContext
from calcimg.describe import Descriptions, describe
from calcimg.detect import Detections, detect
from calcimg.errors import CalcimgError, ContextError, NotAnImageError, StageError
from calcimg.ingest import Source, iter_radiographs, read_radiograph
from calcimg.radiograph import Radiograph
from calcimg.result import ErrorInfo, Finding, ImageInfo, Result, Status
from calcimg.rules import Assessment, rank

__all__ = ["analyze", "analyze_file", "analyze_radiograph", "error_result"]

log = logging.getLogger(__name__)

T = TypeVar("T")

ContextFn = Callable[[Radiograph], ClinicalContext | None]
"""Finds a radiograph's context after ingest (e.g. :class:`calcimg.context.ContextResolver`
matching CSV rows by SOP Instance UID, or sidecar files)."""

ContextLike = ClinicalContext | Mapping[str, Any] | ContextFn | None


def _as_context(context: ContextLike) -> ClinicalContext | ContextFn | None:
    """Validate a mapping now (a caller's error raises); keep a resolver for later."""
    if context is None or isinstance(context, ClinicalContext):
        return context
    if isinstance(context, Mapping):
        return ClinicalContext.from_dict(context)
    if callable(context):
        return context
    raise ContextError(
        f"context = {context!r}; expected a ClinicalContext, a mapping of labs and history, "
        "or a callable taking the Radiograph"
    )


def _resolve_context(
    context: ClinicalContext | ContextFn | None, radiograph: Radiograph
) -> ClinicalContext | None:
    if context is None or isinstance(context, ClinicalContext):
        return context
    resolved = context(radiograph)
    if resolved is not None and not isinstance(resolved, ClinicalContext):
        raise ContextError(
            f"{radiograph.source}: the context resolver returned {type(resolved).__name__}; "
            "expected a ClinicalContext or None"
        )
    return resolved


def _timed(timing: dict[str, float], stage: str, fn: Callable[[], T]) -> T:
    t0 = time.perf_counter()
    try:
        return fn()
    except CalcimgError:
        raise
    except Exception as exc:  # a bug in a stage must not stop a batch
        log.exception("stage %s failed", stage)
        raise StageError(
            f"internal error in the {stage} stage: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        timing[stage] = timing.get(stage, 0.0) + (time.perf_counter() - t0) * 1000.0


def error_result(
    source: str, exc: BaseException, *, frame: int = 0, params_hash: str | None = None
) -> Result:
    """The result for an input that could not be analysed (skipped or error)."""
    status = Status.SKIPPED if isinstance(exc, NotAnImageError) else Status.ERROR
    return Result(
        source=source,
        status=status,
        frame=frame,
        error=ErrorInfo.from_exception(exc),
        calcimg_version=__version__,
        params_hash=params_hash,
    )


def analyze_radiograph(
    radiograph: Radiograph,
    *,
    context: ContextLike = None,
    config: Config | None = None,
    timing: Mapping[str, float] | None = None,
) -> Result:
    """Run anatomy, detection, description and rules on an ingested radiograph.

    Parameters
    ----------
    radiograph : Radiograph
    context : ClinicalContext, mapping or callable, optional
        A callable is called with ``radiograph`` and returns its ClinicalContext or
        None; a ContextError it raises makes this result an error.
    config : Config, optional
        Effective parameters (default: :func:`~calcimg.config.load_config`).
    timing : mapping, optional
        Times already spent (``decode``), carried into the result.

    Returns
    -------
    Result
        Status ``"ok"`` with findings, or ``"error"`` when a stage failed.
    """
    config = config or load_config()
    ctx_or_resolver = _as_context(context)
    times: dict[str, float] = dict(timing or {})
    times.setdefault("decode", 0.0)
    try:
        # a resolver's problem (a bad sidecar file) belongs to this image, not the batch
        ctx = _resolve_context(ctx_or_resolver, radiograph)
        anatomy: AnatomyMap = _timed(
            times, "anatomy", lambda: map_anatomy(radiograph, params=config.anatomy)
        )
        detections: Detections = _timed(
            times, "detect", lambda: detect(radiograph, anatomy, params=config.detect)
        )
        descriptions: Descriptions = _timed(
            times,
            "describe",
            lambda: describe(radiograph, anatomy, detections, params=config.describe),
        )
        assessment: Assessment = _timed(
            times, "rules", lambda: rank(descriptions, context=ctx, params=config.rules)
        )
    except CalcimgError as exc:
        r = error_result(radiograph.source, exc, frame=radiograph.frame, params_hash=config.hash())
        return _with_identity(r, radiograph)
    return _compose(radiograph, anatomy, detections, descriptions, assessment, times, config)


def _with_identity(r: Result, rg: Radiograph) -> Result:
    import dataclasses

    return dataclasses.replace(
        r,
        sop_instance_uid=rg.sop_instance_uid,
        study_instance_uid=rg.study_instance_uid,
        series_instance_uid=rg.series_instance_uid,
        modality=rg.modality,
        body_part=rg.body_part_examined,
        input_hash=rg.input_hash,
    )


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars to Python, tuples to lists, NaN/inf to None.

    The contract is strict JSON (no NaN); a descriptor that could not be measured is null.
    """
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _compose(
    rg: Radiograph,
    anatomy: AnatomyMap,
    detections: Detections,
    descriptions: Descriptions,
    assessment: Assessment,
    times: dict[str, float],
    config: Config,
) -> Result:
    label_mask = np.zeros(rg.shape, dtype=np.int32)
    for det in detections.items:
        r0, c0, r1, c1 = det.bbox
        window = label_mask[r0:r1, c0:c1]
        window[det.mask] = det.id
    by_id_desc = {d.detection_id: d for d in descriptions.items}
    by_id_cat = {a.finding_id: a.categories for a in assessment.findings}
    findings: list[Finding] = []
    for det in detections.items:
        desc = by_id_desc.get(det.id)
        if desc is None:
            continue
        findings.append(
            Finding(
                id=det.id,
                pattern=desc.pattern,
                pattern_scores={str(k): round(float(v), 4) for k, v in desc.pattern_scores.items()},
                confidence=round(float(det.confidence), 4),
                bbox=det.bbox,
                centroid_rc=(round(desc.centroid_rc[0], 2), round(desc.centroid_rc[1], 2)),
                area_mm2=round(float(desc.area_mm2), 3),
                n_particles=det.n_particles,
                # the sentences that drove the pattern choice travel with the
                # descriptors, so explain, reports and the web page can show them
                descriptors=_plain({**desc.descriptors, "drivers": list(desc.drivers)}),
                location=desc.location,
                categories=by_id_cat.get(det.id, ()),
            )
        )
    return Result(
        source=rg.source,
        status=Status.OK,
        frame=rg.frame,
        calcimg_version=__version__,
        sop_instance_uid=rg.sop_instance_uid,
        study_instance_uid=rg.study_instance_uid,
        series_instance_uid=rg.series_instance_uid,
        modality=rg.modality,
        body_part=rg.body_part_examined,
        image=ImageInfo(
            rows=rg.shape[0],
            columns=rg.shape[1],
            pixel_spacing_mm=(round(rg.pixel_spacing_mm[0], 6), round(rg.pixel_spacing_mm[1], 6)),
            spacing_source=str(rg.spacing_source),
            calibrated=rg.calibrated,
            transforms=rg.transforms,
        ),
        findings=tuple(findings),
        categories=assessment.categories,
        differential=assessment.differential,
        workup=assessment.workup,
        timing_ms={k: round(v, 3) for k, v in times.items()},
        confounders=anatomy.confounders,
        params_hash=config.hash(),
        input_hash=rg.input_hash,
        label_mask=label_mask,
        anatomy_labels=anatomy.labels,
    )


def analyze(
    source: Source,
    *,
    context: ContextLike = None,
    config: Config | None = None,
    frame: int = 0,
) -> Result:
    """Run the whole pipeline on one image (one frame of a multi-frame object).

    Parameters
    ----------
    source : path, binary file-like or pydicom.Dataset
    context : ClinicalContext, mapping or callable, optional
        Labs and history (``CONTRACT.md``); a mapping is validated now; a callable
        (``Radiograph -> ClinicalContext | None``) is called after ingest.
    config : Config, optional
        Effective parameters (default: code defaults with ``models/params.toml``).
    frame : int
        Frame index for multi-frame objects.

    Returns
    -------
    Result
        Never raises for a bad input: the result has status ``"error"`` or
        ``"skipped"`` and the reason in ``error``.

    Raises
    ------
    ContextError
        When ``context`` is a mapping with unknown keys or bad values.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> r = analyze(get_testdata_file("RG1_UNCR.dcm"))
    >>> r.status.value, r.image.spacing_source
    ('ok', 'assumed')
    """
    config = config or load_config()
    ctx = _as_context(context)
    name = _name_of(source)
    t0 = time.perf_counter()
    try:
        rg = read_radiograph(source, frame=frame, params=config.ingest)
    except Exception as exc:
        return _read_failure(name, exc, frame, config)
    decode_ms = (time.perf_counter() - t0) * 1000.0
    return analyze_radiograph(rg, context=ctx, config=config, timing={"decode": decode_ms})


def analyze_file(
    source: Source,
    *,
    context: ContextLike = None,
    config: Config | None = None,
) -> Iterator[Result]:
    """Analyse every frame of a source, yielding one result per frame.

    A file that cannot be read yields exactly one error (or skipped) result.
    """
    config = config or load_config()
    ctx = _as_context(context)
    name = _name_of(source)
    frames = iter_radiographs(source, params=config.ingest)
    frame = 0
    while True:
        t0 = time.perf_counter()
        try:
            rg = next(frames)
        except StopIteration:
            return
        except Exception as exc:
            yield _read_failure(name, exc, frame, config)
            return
        decode_ms = (time.perf_counter() - t0) * 1000.0
        yield analyze_radiograph(rg, context=ctx, config=config, timing={"decode": decode_ms})
        frame += 1


def _read_failure(name: str, exc: Exception, frame: int, config: Config) -> Result:
    """The result for an input ingest could not read: its typed error, or a StageError
    for a failure of pydicom or a plugin that ingest does not map yet (logged)."""
    if not isinstance(exc, CalcimgError):
        log.exception("unexpected error reading %s", name)
        exc = StageError(f"{name}: unexpected error while reading: {type(exc).__name__}: {exc}")
    return error_result(name, exc, frame=frame, params_hash=config.hash())


def _name_of(source: Source) -> str:
    from calcimg.ingest import _source_name

    return _source_name(source)
