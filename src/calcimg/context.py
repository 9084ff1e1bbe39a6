"""Clinical context: labs and history that the rule layer weighs (``CONTRACT.md``).

A :class:`ClinicalContext` holds one patient's labs in conventional units and their
history; every field is optional (``None`` = not known). :meth:`ClinicalContext.from_dict`
reads the contract's JSON object, converts SI units, and checks types and plausible
ranges, so that a typo or a value in the wrong unit fails loudly instead of silently
changing a ranking.

Derived values (:meth:`ClinicalContext.derived`), each with its definition and source:

- ``ca_x_p_mg2_dl2``: serum calcium x serum phosphate (mg/dL x mg/dL). Above 70 mg2/dL2
  (5.6 mmol2/L2) is the metastatic-calcification threshold (``DOMAIN.md``, Types:
  metastatic).
- ``corrected_calcium_mg_dl``: albumin-corrected calcium, Payne's formula
  Ca + 0.8 x (4.0 - albumin) (Payne RB et al., BMJ 1973;4:643-6); ``DOMAIN.md`` asks for
  albumin in the work-up for exactly this.

Where context comes from (:class:`ContextResolver`): a sidecar ``<image>.context.json``
beside an image, a CSV row keyed by SOP Instance UID or file name, or one JSON file for
every image, in that order of precedence (the first that has an entry is used whole).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calcimg.errors import ContextError

if TYPE_CHECKING:
    from calcimg.radiograph import Radiograph

__all__ = [
    "CONNECTIVE_TISSUE_DISEASES",
    "SI_UNITS",
    "ClinicalContext",
    "ContextResolver",
    "ContextTable",
    "DerivedValue",
    "load_context_csv",
    "load_context_file",
    "sidecar_paths",
]

CONNECTIVE_TISSUE_DISEASES: tuple[str, ...] = (
    "scleroderma",
    "systemic_sclerosis",
    "crest_syndrome",
    "dermatomyositis",
    "juvenile_dermatomyositis",
    "polymyositis",
    "lupus",
    "mixed_connective_tissue_disease",
    "overlap_syndrome",
    "unspecified",
)
"""Valid values of ``connective_tissue_disease`` (case, spaces and hyphens are
normalised: ``"Systemic sclerosis"`` -> ``"systemic_sclerosis"``). ``DOMAIN.md`` names
scleroderma, dermatomyositis and lupus as the calcinosis associations; ``true`` means a
connective tissue disease of unknown kind (``"unspecified"``), ``false`` means none."""

_CTD_ALIASES = {"sle": "lupus", "systemic_lupus_erythematosus": "lupus", "crest": "crest_syndrome"}

# Plausible ranges in conventional units: wide enough for any real patient, narrow
# enough to catch a value given in the other unit (calcium 2.4 "mg/dL" is mmol/L).
_RANGES: dict[str, tuple[float, float, str]] = {
    "serum_calcium_mg_dl": (2.0, 25.0, "mg/dL"),
    "serum_phosphate_mg_dl": (0.5, 20.0, "mg/dL"),
    "albumin_g_dl": (0.5, 7.0, "g/dL"),
    "alkaline_phosphatase_u_l": (5.0, 5000.0, "U/L"),
    "age_years": (0.0, 120.0, "years"),
}

SI_UNITS: dict[str, tuple[str, float, str]] = {
    "serum_calcium_mmol_l": ("serum_calcium_mg_dl", 4.008, "mmol/L"),
    "serum_phosphate_mmol_l": ("serum_phosphate_mg_dl", 3.097, "mmol/L"),
    "albumin_g_l": ("albumin_g_dl", 0.1, "g/L"),
}
"""SI key -> (conventional key, factor to conventional units, SI unit). Calcium
40.08 g/mol -> x 4.008; phosphorus 30.97 g/mol -> x 3.097; g/L -> g/dL / 10."""

_BOOL_KEYS = (
    "renal_failure",
    "dialysis",
    "trauma",
    "calcium_or_phosphate_administration",
)

CA_X_P_METASTATIC_MG2_DL2 = 70.0
"""Ca x P product above which metastatic calcification is expected (``DOMAIN.md``)."""


@dataclass(frozen=True, slots=True)
class DerivedValue:
    """A value computed from the context, with its definition and source."""

    name: str
    value: float
    unit: str
    definition: str
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClinicalContext:
    """Labs (conventional units) and history for one patient; every field optional.

    Build it with :meth:`from_dict` to get unit conversion and validation; the
    constructor validates ranges and types too.

    Examples
    --------
    >>> ctx = ClinicalContext.from_dict({"serum_calcium_mmol_l": 2.5, "serum_phosphate_mg_dl": 8})
    >>> round(ctx.serum_calcium_mg_dl, 2), round(ctx.ca_x_p_mg2_dl2, 1)
    (10.02, 80.2)
    """

    serum_calcium_mg_dl: float | None = None
    serum_phosphate_mg_dl: float | None = None
    albumin_g_dl: float | None = None
    alkaline_phosphatase_u_l: float | None = None
    renal_failure: bool | None = None
    dialysis: bool | None = None
    connective_tissue_disease: str | None = None
    trauma: bool | None = None
    calcium_or_phosphate_administration: bool | None = None
    age_years: float | None = None

    def __post_init__(self) -> None:
        for key, (low, high, unit) in _RANGES.items():
            v = getattr(self, key)
            if v is not None:
                _check_number("context", key, v, low, high, unit)
        for key in _BOOL_KEYS:
            v = getattr(self, key)
            if v is not None and not isinstance(v, bool):
                raise ContextError(f"context: {key} = {v!r}; expected true, false or null")
        ctd = self.connective_tissue_disease
        if ctd is not None and ctd not in CONNECTIVE_TISSUE_DISEASES:
            raise ContextError(
                f"context: connective_tissue_disease = {ctd!r} is not a known value; "
                f"expected one of {', '.join(CONNECTIVE_TISSUE_DISEASES)} (or null)"
            )

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The conventional-unit keys (the dataclass fields)."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def known_keys(cls) -> tuple[str, ...]:
        """Every key :meth:`from_dict` accepts: conventional and SI."""
        return (*cls.field_names(), *SI_UNITS)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "context") -> ClinicalContext:
        """Build from the contract's JSON object, converting SI units.

        Parameters
        ----------
        d : mapping
            Keys of :meth:`known_keys`; ``None`` values mean "not known".
        where : str
            Where ``d`` came from (file, CSV row), for messages.

        Returns
        -------
        ClinicalContext

        Raises
        ------
        ContextError
            Unknown keys (the known ones are listed), a lab given in both conventional
            and SI units, a wrong type, or a value outside its plausible range.
        """
        if not isinstance(d, Mapping):
            raise ContextError(
                f"{where}: expected an object of labs and history; found {type(d).__name__}"
            )
        known = cls.known_keys()
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ContextError(
                f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known keys: "
                f"{', '.join(known)}"
            )
        values: dict[str, Any] = {}
        for key in cls.field_names():
            if d.get(key) is not None:
                values[key] = d[key]
        for si_key, (conv_key, factor, unit) in SI_UNITS.items():
            si = d.get(si_key)
            if si is None:
                continue
            if conv_key in values:
                raise ContextError(
                    f"{where}: both {conv_key} and {si_key} are given; expected one value "
                    "per lab (conventional or SI units, not both)"
                )
            low, high, _ = _RANGES[conv_key]
            _check_number(where, si_key, si, low / factor, high / factor, unit)
            values[conv_key] = float(si) * factor
        for key in _RANGES:
            if key in values:
                low, high, unit = _RANGES[key]
                _check_number(where, key, values[key], low, high, unit)
                values[key] = float(values[key])
        for key in _BOOL_KEYS:
            if key in values:
                values[key] = _as_bool(where, key, values[key])
        if "connective_tissue_disease" in d:
            values["connective_tissue_disease"] = _as_ctd(where, d["connective_tissue_disease"])
            if values["connective_tissue_disease"] is None:
                del values["connective_tissue_disease"]
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The conventional-unit JSON object (``None`` for unknown values)."""
        return {k: getattr(self, k) for k in self.field_names()}

    @property
    def is_empty(self) -> bool:
        """True when nothing is known."""
        return all(getattr(self, k) is None for k in self.field_names())

    @property
    def ca_x_p_mg2_dl2(self) -> float | None:
        """Serum calcium x phosphate product (mg2/dL2); None unless both are known."""
        if self.serum_calcium_mg_dl is None or self.serum_phosphate_mg_dl is None:
            return None
        return self.serum_calcium_mg_dl * self.serum_phosphate_mg_dl

    @property
    def corrected_calcium_mg_dl(self) -> float | None:
        """Albumin-corrected calcium (Payne): Ca + 0.8 x (4.0 - albumin), mg/dL."""
        if self.serum_calcium_mg_dl is None or self.albumin_g_dl is None:
            return None
        return self.serum_calcium_mg_dl + 0.8 * (4.0 - self.albumin_g_dl)

    def derived(self) -> tuple[DerivedValue, ...]:
        """The derived values that can be computed, with definition and source."""
        out: list[DerivedValue] = []
        if (cxp := self.ca_x_p_mg2_dl2) is not None:
            out.append(
                DerivedValue(
                    "ca_x_p_mg2_dl2",
                    cxp,
                    "mg2/dL2",
                    "serum calcium (mg/dL) x serum phosphate (mg/dL)",
                    f"DOMAIN.md Types, metastatic: Ca x P > {CA_X_P_METASTATIC_MG2_DL2:g} "
                    "mg2/dL2 (5.6 mmol2/L2)",
                )
            )
        if (cc := self.corrected_calcium_mg_dl) is not None:
            out.append(
                DerivedValue(
                    "corrected_calcium_mg_dl",
                    cc,
                    "mg/dL",
                    "Payne: serum calcium + 0.8 x (4.0 - albumin g/dL)",
                    "Payne RB et al., BMJ 1973;4:643-6; DOMAIN.md work-up (albumin for "
                    "albumin-corrected calcium)",
                )
            )
        return tuple(out)

    def variables(self) -> dict[str, Any]:
        """Every field plus the derived values, by name (for the rule table)."""
        out: dict[str, Any] = self.to_dict()
        out["ca_x_p_mg2_dl2"] = self.ca_x_p_mg2_dl2
        out["corrected_calcium_mg_dl"] = self.corrected_calcium_mg_dl
        return out


def _check_number(where: str, key: str, v: Any, low: float, high: float, unit: str) -> None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ContextError(f"{where}: {key} = {v!r}; expected a number in {unit}")
    if not math.isfinite(v) or not low <= v <= high:
        raise ContextError(
            f"{where}: {key} = {v!r} is outside the plausible range; expected "
            f"{low:.3g}-{high:.3g} {unit} (check the unit)"
        )


def _as_bool(where: str, key: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "yes", "1"):
        return True
    if isinstance(v, str) and v.strip().lower() in ("false", "no", "0"):
        return False
    raise ContextError(f"{where}: {key} = {v!r}; expected true or false")


def _as_ctd(where: str, v: Any) -> str | None:
    if v is None or v is False:
        return None
    if v is True:
        return "unspecified"
    if not isinstance(v, str):
        raise ContextError(
            f"{where}: connective_tissue_disease = {v!r}; expected a name such as "
            f"'scleroderma', true, false or null"
        )
    norm = v.strip().lower().replace("-", "_").replace(" ", "_")
    if norm in ("", "none", "no", "false"):
        return None
    if norm in ("true", "yes"):
        return "unspecified"
    norm = _CTD_ALIASES.get(norm, norm)
    if norm not in CONNECTIVE_TISSUE_DISEASES:
        raise ContextError(
            f"{where}: connective_tissue_disease = {v!r} is not a known value; expected one "
            f"of {', '.join(CONNECTIVE_TISSUE_DISEASES)} (or null)"
        )
    return norm


def load_context_file(path: str | os.PathLike[str]) -> ClinicalContext:
    """Read one context JSON object from ``path``.

    Raises
    ------
    ContextError
        Missing file, invalid JSON, not an object, or invalid content.
    """
    p = Path(path)
    try:
        data: Any = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContextError(f"{p}: context file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContextError(f"{p}: cannot read the context file: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ContextError(f"{p}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ContextError(
            f"{p}: expected a JSON object of labs and history; found {type(data).__name__}"
        )
    return ClinicalContext.from_dict(data, where=str(p))


@dataclass(frozen=True, slots=True)
class ContextTable:
    """Context rows of a CSV, by SOP Instance UID and by file name."""

    path: str
    by_uid: Mapping[str, ClinicalContext]
    by_file: Mapping[str, ClinicalContext]
    """Keyed by the ``file`` cell as given, normalised (``os.path.normpath``)."""

    def lookup(self, *, sop_instance_uid: str | None, source: str | None) -> ClinicalContext | None:
        """The row for an image: by UID first, then by path, then by file name."""
        if sop_instance_uid and sop_instance_uid in self.by_uid:
            return self.by_uid[sop_instance_uid]
        if not source or not self.by_file:
            return None
        norm = os.path.normpath(source)
        if norm in self.by_file:
            return self.by_file[norm]
        absolute = os.path.abspath(source)
        base = os.path.basename(norm)
        hits = [
            ctx
            for key, ctx in self.by_file.items()
            if os.path.abspath(key) == absolute or (os.sep not in key and key == base)
        ]
        if len(hits) > 1:
            raise ContextError(
                f"{self.path}: {len(hits)} rows match image {source!r} by file name; "
                "expected one (give paths or SOP Instance UIDs)"
            )
        return hits[0] if hits else None


def load_context_csv(path: str | os.PathLike[str]) -> ContextTable:
    """Read a batch context CSV.

    One row per image, keyed by a ``sop_instance_uid`` or ``file`` column (either or
    both); the other columns are context keys (conventional or SI, as in
    :meth:`ClinicalContext.known_keys`). Empty cells are missing values; numbers and
    true/false are parsed from the text.

    Raises
    ------
    ContextError
        No key column, unknown columns, duplicate keys, or an invalid row (the row
        number is named).
    """
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except FileNotFoundError:
        raise ContextError(f"{p}: context CSV not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ContextError(f"{p}: cannot read the context CSV: {exc}") from exc
    key_cols = [c for c in ("sop_instance_uid", "file") if c in header]
    if not key_cols:
        raise ContextError(
            f"{p}: no key column; expected a 'sop_instance_uid' or 'file' column; found "
            f"columns {', '.join(header) or '(none)'}"
        )
    value_cols = [c for c in header if c not in key_cols]
    known = ClinicalContext.known_keys()
    unknown = [c for c in value_cols if c not in known]
    if unknown:
        raise ContextError(
            f"{p}: unknown column(s) {', '.join(unknown)}; known columns: sop_instance_uid, "
            f"file, {', '.join(known)}"
        )
    by_uid: dict[str, ClinicalContext] = {}
    by_file: dict[str, ClinicalContext] = {}
    for n, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{p} line {n}"
        values = {c: _parse_cell(row.get(c)) for c in value_cols}
        ctx = ClinicalContext.from_dict(
            {k: v for k, v in values.items() if v is not None}, where=where
        )
        uid = (row.get("sop_instance_uid") or "").strip()
        file = (row.get("file") or "").strip()
        if not uid and not file:
            raise ContextError(f"{where}: expected a sop_instance_uid or file; both are empty")
        if uid:
            if uid in by_uid:
                raise ContextError(f"{where}: sop_instance_uid {uid} appears twice")
            by_uid[uid] = ctx
        if file:
            key = os.path.normpath(file)
            if key in by_file:
                raise ContextError(f"{where}: file {file} appears twice")
            by_file[key] = ctx
    return ContextTable(str(p), by_uid, by_file)


def _parse_cell(cell: str | None) -> Any:
    if cell is None:
        return None
    text = cell.strip()
    if not text:
        return None
    low = text.lower()
    if low in ("true", "false", "yes", "no", "null", "none"):
        return {"true": True, "yes": True, "false": False, "no": False}.get(low)
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def sidecar_paths(source: str) -> tuple[Path, Path]:
    """The two sidecar names for an image: ``knee.context.json``, ``knee.dcm.context.json``."""
    p = Path(source)
    return p.with_name(p.stem + ".context.json"), p.with_name(p.name + ".context.json")


@dataclass(frozen=True, slots=True)
class ContextResolver:
    """Find the clinical context of each radiograph of a batch.

    Called with a :class:`~calcimg.radiograph.Radiograph` (after ingest, so SOP
    Instance UIDs can be matched). Precedence, the first found is used whole (no
    key-wise merging, so that one image's labs never mix two sources):

    1. a sidecar ``<stem>.context.json`` or ``<name>.context.json`` beside the image
       (when ``sidecars`` is true; both present is an error);
    2. the CSV row for the image's SOP Instance UID or file name (``table``);
    3. the context given for every image (``default``).
    """

    default: ClinicalContext | None = None
    table: ContextTable | None = None
    sidecars: bool = True

    def __call__(self, radiograph: Radiograph) -> ClinicalContext | None:
        return self.resolve(source=radiograph.source, sop_instance_uid=radiograph.sop_instance_uid)

    def resolve(
        self, *, source: str | None, sop_instance_uid: str | None
    ) -> ClinicalContext | None:
        """The context for an image given its path and UID."""
        if self.sidecars and source and not source.startswith("<"):
            found = [p for p in sidecar_paths(source) if p.is_file()]
            if len(found) > 1:
                raise ContextError(
                    f"{source}: two sidecar context files ({found[0].name}, {found[1].name}); "
                    "expected at most one"
                )
            if found:
                return load_context_file(found[0])
        if self.table is not None:
            row = self.table.lookup(sop_instance_uid=sop_instance_uid, source=source)
            if row is not None:
                return row
        return self.default


ContextSource = Callable[["Radiograph"], ClinicalContext | None]
"""A callable that returns the context of a radiograph (e.g. a :class:`ContextResolver`)."""
