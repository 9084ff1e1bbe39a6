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

# The research feature API is loaded on first use, so that `import calcimg` stays light
# (no pandas) for the pipeline, the CLI and the web app.
_LAZY = {
    "extract_features": "calcimg.features",
    "image_features": "calcimg.features",
    "iter_features": "calcimg.features",
    "iter_image_features": "calcimg.features",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'calcimg' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
    "extract_features",
    "image_features",
    "iter_features",
    "iter_image_features",
    "iter_inputs",
    "iter_radiographs",
    "load_config",
    "read_radiograph",
]
