"""The Python API: feature tables as pandas DataFrames, or rows one at a time."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from calcimg.config import Config
from calcimg.context import ClinicalContext
from calcimg.features.extract import (
    FrameRows,
    ImageSource,
    iter_frame_rows,
    jobs_from_inputs,
    make_settings,
)
from calcimg.features.region import FeatureParams

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "extract_features",
    "image_features",
    "iter_features",
    "iter_image_features",
    "require_pandas",
]

Inputs = ImageSource | Iterable[ImageSource]
ContextLike = ClinicalContext | Mapping[str, Any] | Callable[..., Any] | None
ParamsLike = FeatureParams | Mapping[str, Any] | None


def require_pandas() -> Any:
    """Import pandas, or say how to install it."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "calcimg's feature tables need pandas (and pyarrow for Parquet); install "
            "them with `pip install 'calcimg[features]'`"
        ) from None
    return pd


def _frames(
    paths_or_datasets: Inputs,
    *,
    image_level: bool,
    context: ContextLike,
    params: ParamsLike,
    config: Config | None,
    mask: str | os.PathLike[str] | None,
    pseudonymize: str | None,
    jobs: int,
) -> Iterator[FrameRows]:
    """The measured frames of every input, as :func:`iter_frame_rows` gives them."""
    settings = make_settings(
        context=context,
        config=config,
        params=params,
        image_level=image_level,
        pseudonymize=pseudonymize,
    )
    job_list = jobs_from_inputs(paths_or_datasets, mask=mask)
    for _job, frames in iter_frame_rows(job_list, settings, n_jobs=jobs):
        yield from frames


def iter_features(
    paths_or_datasets: Inputs,
    *,
    context: ContextLike = None,
    params: ParamsLike = None,
    config: Config | None = None,
    mask: str | os.PathLike[str] | None = None,
    pseudonymize: str | None = None,
    include_empty: bool = False,
    jobs: int = 1,
) -> Iterator[dict[str, Any]]:
    """Yield one feature row (a dict) per finding, image by image.

    Parameters are those of :func:`extract_features`; rows come as each image is done,
    so a large set never sits in memory.
    """
    for fr in _frames(
        paths_or_datasets,
        image_level=False,
        context=context,
        params=params,
        config=config,
        mask=mask,
        pseudonymize=pseudonymize,
        jobs=jobs,
    ):
        for row in fr.findings:
            if include_empty or row.get("finding_id") is not None:
                yield row


def iter_image_features(
    paths_or_datasets: Inputs,
    *,
    context: ContextLike = None,
    params: ParamsLike = None,
    config: Config | None = None,
    mask: str | os.PathLike[str] | None = None,
    pseudonymize: str | None = None,
    jobs: int = 1,
) -> Iterator[dict[str, Any]]:
    """Yield one image-level row (a dict) per image (per frame); see :func:`image_features`."""
    for fr in _frames(
        paths_or_datasets,
        image_level=True,
        context=context,
        params=params,
        config=config,
        mask=mask,
        pseudonymize=pseudonymize,
        jobs=jobs,
    ):
        yield fr.image


def extract_features(
    paths_or_datasets: Inputs,
    *,
    context: ContextLike = None,
    params: ParamsLike = None,
    config: Config | None = None,
    mask: str | os.PathLike[str] | None = None,
    pseudonymize: str | None = None,
    include_empty: bool = False,
    jobs: int = 1,
) -> pd.DataFrame:
    """Per-finding feature table: run the pipeline (or read a mask) and measure.

    Parameters
    ----------
    paths_or_datasets : path, pydicom.Dataset, or an iterable of them
        DICOM files, folders (searched recursively), DICOMDIRs, PNG/TIFF exports, or
        batch CSVs with ``Image`` (and optional ``Mask``) columns.
    context : ClinicalContext, mapping or callable, optional
        Clinical context for the rule layer (category scores); a callable (e.g.
        ``calcimg.context.ContextResolver``, where the pipeline supports it) gives each
        radiograph its own.
    params : FeatureParams or mapping, optional
        Feature parameters (``bin_width``, ``ring_width_mm``, ...).
    config : Config, optional
        Pipeline parameters (default: :func:`calcimg.load_config`).
    mask : path, optional
        A label mask for a single image (PNG/TIFF, NRRD/NIfTI, DICOM SEG): its regions
        are measured instead of the detector's findings.
    pseudonymize : str, optional
        Salt: identifiers are replaced by HMAC-SHA256 pseudonyms.
    include_empty : bool
        Also give one row (``finding_id`` empty) per image without findings and per
        input that failed (``status``, ``error``).
    jobs : int
        Worker processes.

    Returns
    -------
    pandas.DataFrame
        One row per finding; columns in :data:`calcimg.features.registry.FEATURES`.

    Examples
    --------
    >>> df = extract_features("scans/", params={"bin_width": 10})  # doctest: +SKIP
    >>> df[["source", "finding_id", "area_mm2", "pattern"]]  # doctest: +SKIP
    """
    pd = require_pandas()
    rows = list(
        iter_features(
            paths_or_datasets,
            context=context,
            params=params,
            config=config,
            mask=mask,
            pseudonymize=pseudonymize,
            include_empty=include_empty,
            jobs=jobs,
        )
    )
    return pd.DataFrame(rows)


def image_features(
    paths_or_datasets: Inputs,
    *,
    context: ContextLike = None,
    params: ParamsLike = None,
    config: Config | None = None,
    mask: str | os.PathLike[str] | None = None,
    pseudonymize: str | None = None,
    jobs: int = 1,
) -> pd.DataFrame:
    """Per-image table: counts per pattern, total calcified area, sites, burden, categories.

    Parameters are those of :func:`extract_features`. Every input gives a row (per
    frame), failed ones with ``status`` and ``error``.

    Returns
    -------
    pandas.DataFrame
    """
    pd = require_pandas()
    rows = list(
        iter_image_features(
            paths_or_datasets,
            context=context,
            params=params,
            config=config,
            mask=mask,
            pseudonymize=pseudonymize,
            jobs=jobs,
        )
    )
    return pd.DataFrame(rows)
