"""calcimg: find and explain soft-tissue calcifications on radiographs.

The pipeline is a chain of pure stages, ``ingest -> anatomy -> detect -> describe ->
rules``, composed by :func:`analyze`, which returns a :class:`Result` in the contract of
``calcimg.result/1``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from calcimg.config import Config, load_config
from calcimg.context import ClinicalContext
from calcimg.errors import (
    CalcimgError,
    ConfigError,
    ContextError,
    DicomReadError,
    InputError,
    NotAnImageError,
    PixelDecodeError,
    StageError,
    UnsupportedImageError,
)
from calcimg.ingest import IngestParams, iter_inputs, iter_radiographs, read_radiograph
from calcimg.pipeline import analyze, analyze_file, analyze_radiograph
from calcimg.radiograph import Radiograph, SpacingSource
from calcimg.result import Category, Finding, Pattern, Result, Status

__all__ = [
    "CalcimgError",
    "Category",
    "ClinicalContext",
    "Config",
    "ConfigError",
    "ContextError",
    "DicomReadError",
    "Finding",
    "IngestParams",
    "InputError",
    "NotAnImageError",
    "Pattern",
    "PixelDecodeError",
    "Radiograph",
    "Result",
    "SpacingSource",
    "StageError",
    "Status",
    "UnsupportedImageError",
    "__version__",
    "analyze",
    "analyze_file",
    "analyze_radiograph",
    "iter_inputs",
    "iter_radiographs",
    "load_config",
    "read_radiograph",
]
