"""Helpers shared by the stages' frozen parameter dataclasses.

Each stage defines its own ``XParams`` as ``@dataclass(frozen=True, slots=True,
kw_only=True)`` and validates it in ``__post_init__`` with these helpers, so that a bad
value fails with a :class:`~calcimg.errors.ConfigError` that names the parameter, the
value found and the range expected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import field
from importlib import resources
from pathlib import Path
from typing import Any

from calcimg.errors import ConfigError

__all__ = [
    "MODEL_FILE",
    "check_choice",
    "check_positive",
    "check_range",
    "model_file",
    "model_file_param",
    "models_dir",
]


def check_range(
    qualname: str, value: float, low: float, high: float, *, low_open: bool = False
) -> None:
    """Raise ConfigError unless ``low <= value <= high`` (``low < value`` if low_open).

    Parameters
    ----------
    qualname : str
        ``section.name`` of the parameter, for the message.
    value, low, high : float
        The value and its closed (or half-open) range.
    """
    ok = (low < value if low_open else low <= value) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ConfigError(
            f"parameter {qualname} = {value!r} is out of range; expected a value in "
            f"{bracket}{low}, {high}]"
        )


def check_positive(qualname: str, value: float) -> None:
    """Raise ConfigError unless ``value > 0``."""
    if not value > 0:
        raise ConfigError(f"parameter {qualname} = {value!r}; expected a value > 0")


def check_choice(qualname: str, value: str, choices: Iterable[str]) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices`` (listed in the message)."""
    options = list(choices)
    if value not in options:
        raise ConfigError(
            f"parameter {qualname} = {value!r} is not a valid choice; expected one of "
            f"{', '.join(map(repr, options))}"
        )


def models_dir() -> Path:
    """The folder of tuned parameter files and rule tables (``models/`` of the repo).

    In an installed wheel it is packaged as ``calcimg/_models``; in a source checkout
    (editable install or ``PYTHONPATH=src``) it is the repository's ``models/``.
    """
    packaged = Path(str(resources.files("calcimg").joinpath("_models")))
    if packaged.is_dir():
        return packaged
    repo = Path(__file__).resolve().parents[2] / "models"
    if repo.is_dir():
        return repo
    raise ConfigError(
        f"cannot find calcimg's models folder: looked in {packaged} and {repo}; "
        "reinstall calcimg (pip install .) so the wheel carries models/"
    )


def model_file(value: str, *, qualname: str, expected: str) -> Path:
    """Resolve a parameter that names a file: a path, or a file name in ``models/``.

    Parameters
    ----------
    value : str
        The parameter's value.
    qualname : str
        ``section.name`` of the parameter, for the message.
    expected : str
        What the file should be, for the message (``"a rule table such as 'rules.toml'"``).

    Raises
    ------
    ConfigError
        Neither the path nor the name in :func:`models_dir` is a file.
    """
    p = Path(value)
    if p.is_file():
        return p
    if p.parent == Path("."):
        q = models_dir() / p.name
        if q.is_file():
            return q
    raise ConfigError(
        f"parameter {qualname} = {value!r}: no such file (looked at {p} and in "
        f"{models_dir()}); expected {expected}"
    )


MODEL_FILE = "calcimg.model_file"
"""Field-metadata key marking a parameter that names a file (:func:`model_file_param`)."""


def model_file_param(default: str) -> Any:
    """A dataclass field for a parameter that names a file read with :func:`model_file`.

    The mark lets :meth:`calcimg.config.Config.hash` cover the file's content, so that a
    retrained model or an edited table under the same name changes every result's hash.
    """
    return field(default=default, metadata={MODEL_FILE: True})
