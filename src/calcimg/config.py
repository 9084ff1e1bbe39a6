"""Effective parameters of a run: defaults < ``models/params.toml`` < file < ``--set``.

A parameter file is sectioned TOML, one section per stage::

    [detect]
    min_cnr = 3.5

    [ingest]
    default_spacing_mm = 0.15

Unknown sections and keys are errors that list the valid ones. ``--set stage.name=value``
overrides take TOML literals (``--set detect.min_cnr=4``). :meth:`Config.hash` is the
SHA-256 of the effective parameters and of the content of the model files they name
(``detect.bone_model``, ``rules.table``: :func:`calcimg.params.model_file_param`), recorded
in every result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from calcimg.anatomy import AnatomyParams
from calcimg.describe import DescribeParams
from calcimg.detect import DetectParams
from calcimg.errors import ConfigError
from calcimg.ingest import IngestParams
from calcimg.params import MODEL_FILE, model_file, models_dir
from calcimg.rules import RulesParams

__all__ = ["TUNED_PARAMS_FILE", "Config", "load_config"]

TUNED_PARAMS_FILE = "params.toml"
"""The tuned parameter file in ``models/``, applied over the code defaults."""

_SECTIONS: dict[str, type] = {
    "ingest": IngestParams,
    "anatomy": AnatomyParams,
    "detect": DetectParams,
    "describe": DescribeParams,
    "rules": RulesParams,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """All stages' parameters for one run."""

    ingest: IngestParams = field(default_factory=IngestParams)
    anatomy: AnatomyParams = field(default_factory=AnatomyParams)
    detect: DetectParams = field(default_factory=DetectParams)
    describe: DescribeParams = field(default_factory=DescribeParams)
    rules: RulesParams = field(default_factory=RulesParams)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Sectioned plain dict of every parameter (tuples as lists)."""
        return {name: _params_to_dict(getattr(self, name)) for name in _SECTIONS}

    def hash(self) -> str:
        """SHA-256 (hex, first 16 chars) of the effective parameters and of the content of
        the files they name (the fields made by :func:`calcimg.params.model_file_param`, so
        that a retrained model or an edited rule table under the same name changes the hash
        of every result made with it; a file that cannot be read counts as
        ``"unreadable"``, so that an error result still gets a hash)."""
        files: dict[str, str] = {}
        for section in _SECTIONS:
            params = getattr(self, section)
            for f in dataclasses.fields(params):
                if f.metadata.get(MODEL_FILE):
                    files[f"{section}.{f.name}"] = _file_digest(
                        getattr(params, f.name), section, f.name
                    )
        doc: dict[str, Any] = {**self.to_dict(), "model_files": files}
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def replace(self, **sections: Any) -> Config:
        """A copy with some sections replaced."""
        return dataclasses.replace(self, **sections)


def _file_digest(value: str, section: str, name: str) -> str:
    """SHA-256 of the file a parameter names, or ``"unreadable"``."""
    try:
        path = model_file(value, qualname=f"{section}.{name}", expected="a file").resolve()
        st = path.stat()
    except (ConfigError, OSError):
        return "unreadable"
    return _digest_cached(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=16)
def _digest_cached(path: str, mtime_ns: int, size: int) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def _params_to_dict(params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(params):
        v = getattr(params, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def _coerce(qualname: str, annotation: Any, value: Any) -> Any:
    """Convert a TOML value to the field's type (lists to tuples, ints to floats)."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing) | {"types": types})
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(qualname, arg, value)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"parameter {qualname}: bad value {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"parameter {qualname} = {value!r}; expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(qualname, args[0], v) for v in value)
        if len(args) != len(value):
            raise ConfigError(
                f"parameter {qualname} = {value!r}; expected a list of {len(args)} values"
            )
        return tuple(_coerce(qualname, a, v) for a, v in zip(args, value, strict=True))
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"parameter {qualname} = {value!r}; expected a number")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"parameter {qualname} = {value!r}; expected an integer")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"parameter {qualname} = {value!r}; expected true or false")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"parameter {qualname} = {value!r}; expected a string")
        return value
    return value


def _build_section(name: str, values: Mapping[str, Any], base: Any) -> Any:
    cls = _SECTIONS[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        valid = ", ".join(sorted(fields)) or "(none)"
        raise ConfigError(
            f"unknown parameter(s) {', '.join(f'{name}.{k}' for k in unknown)}; "
            f"valid parameters of [{name}]: {valid}"
        )
    hints = typing.get_type_hints(cls)
    coerced = {k: _coerce(f"{name}.{k}", hints[k], v) for k, v in values.items()}
    return dataclasses.replace(base, **coerced)


def _merge(config: Config, data: Mapping[str, Any], where: str) -> Config:
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown section(s) {', '.join(f'[{u}]' for u in unknown)}; "
            f"valid sections: {', '.join(f'[{s}]' for s in _SECTIONS)}"
        )
    updates = {}
    for name, values in data.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}: [{name}] must be a table of parameters")
        try:
            updates[name] = _build_section(name, values, getattr(config, name))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return config.replace(**updates)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: parameter file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _parse_override(text: str) -> tuple[str, str, Any]:
    key, sep, raw = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not name:
        raise ConfigError(f"--set {text!r}: expected stage.name=value, e.g. --set detect.min_cnr=4")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word is taken as a string
    return section, name, value


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    tuned: bool = True,
) -> Config:
    """Build the effective configuration.

    Parameters
    ----------
    path : str or Path, optional
        A site's parameter file (sectioned TOML).
    overrides : sequence of str
        ``stage.name=value`` items, applied last.
    tuned : bool
        Apply ``models/params.toml`` over the code defaults (default True).

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        For unknown sections or keys (the valid ones are listed), bad types or values.

    Examples
    --------
    >>> cfg = load_config(overrides=["ingest.default_spacing_mm=0.2"])
    >>> cfg.ingest.default_spacing_mm
    0.2
    """
    config = Config()
    if tuned:
        tuned_path = models_dir() / TUNED_PARAMS_FILE
        if tuned_path.is_file():
            config = _merge(config, _read_toml(tuned_path), str(tuned_path))
    if path is not None:
        p = Path(path)
        config = _merge(config, _read_toml(p), str(p))
    grouped: dict[str, dict[str, Any]] = {}
    for text in overrides:
        section, name, value = _parse_override(text)
        grouped.setdefault(section, {})[name] = value
    if grouped:
        config = _merge(config, grouped, "--set")
    return config
