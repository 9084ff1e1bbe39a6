"""Clinical context: labs and history that the rule layer weighs (``CONTRACT.md``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from calcimg.errors import ContextError

__all__ = ["ClinicalContext"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClinicalContext:
    """Labs (conventional units) and history for one patient; every field optional."""

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

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "context") -> ClinicalContext:
        """Build from the contract's JSON object; unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ContextError(
                f"{where}: unknown key(s) {', '.join(unknown)}; known keys: "
                f"{', '.join(sorted(known))}"
            )
        return cls(**dict(d))
