"""The calcimg error hierarchy.

Every error a stage raises derives from :class:`CalcimgError` and names the stage that
failed through its class. Messages say what was expected, what was found, and where
(file, DICOM tag, parameter), plus a hint where one helps::

    knee.dcm: (0028,0002) Samples per Pixel is 3; expected 1 (grayscale radiograph)

A batch turns any of these into a result with ``status`` ``"error"`` (or ``"skipped"``
for :class:`NotAnImageError`) and goes on with the next file.
"""

from __future__ import annotations

__all__ = [
    "CalcimgError",
    "ConfigError",
    "ContextError",
    "DicomReadError",
    "InputError",
    "NotAnImageError",
    "PixelDecodeError",
    "StageError",
    "UnsupportedImageError",
]


class CalcimgError(Exception):
    """Root of every error calcimg raises on purpose."""


class InputError(CalcimgError):
    """A path or file cannot be opened or is of an unknown kind."""


class DicomReadError(CalcimgError):
    """A DICOM file cannot be parsed: truncated, no preamble or meta, invalid values."""


class PixelDecodeError(DicomReadError):
    """The pixel data of a DICOM file cannot be decoded (corrupt or truncated stream)."""


class UnsupportedImageError(CalcimgError):
    """A readable image that calcimg does not analyse (true colour, wrong shape, ...)."""


class NotAnImageError(CalcimgError):
    """An object without an image to analyse (SR, RT, SEG, PR, KO, DICOMDIR).

    Batches report it with status ``"skipped"`` and the message as the reason.
    """


class ConfigError(CalcimgError):
    """A parameter file, ``--set`` override or parameter value is invalid."""


class ContextError(CalcimgError):
    """The clinical context (labs, history) is malformed or uses unknown keys or units."""


class StageError(CalcimgError):
    """An analysis stage failed on an image that ingest accepted."""
