"""Pseudonymisation of identifiers in feature tables (``--pseudonymize SALT``).

Every identifying value is replaced by ``HMAC-SHA256(salt, value)``, hex, truncated to
16 characters (64 bits: collisions are negligible for any hospital's archive). The same
salt gives the same pseudonym, so tables from several runs still join; without the salt
the values cannot be reversed or confirmed by hashing a guess. The mapping is never
written anywhere. Error messages have the input and mask paths replaced too. DICOM
attribute values quoted in an error message (an invalid value of some element) are kept.

Which columns: :data:`IDENTIFIER_COLUMNS`. ``source`` (the input path) and ``mask`` are
included because file and folder names often embed names, MRNs or accession numbers;
``input_hash`` and ``mask_hash`` are included because a plain content hash lets anyone
holding a file confirm that it is in the table. Columns a batch CSV carries through are
the user's own and are written as given (drop identifiers from the batch file).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

__all__ = ["IDENTIFIER_COLUMNS", "Pseudonymizer"]

IDENTIFIER_COLUMNS: tuple[str, ...] = (
    "source",
    "mask",
    "patient_id",
    "patient_name",
    "accession_number",
    "study_instance_uid",
    "series_instance_uid",
    "sop_instance_uid",
    "input_hash",
    "mask_hash",
)

PSEUDONYM_CHARS = 16


class Pseudonymizer:
    """Replace identifier columns of a row by salted hashes.

    Parameters
    ----------
    salt : str
        The secret key; keep it to re-identify nothing but to produce the same
        pseudonyms again. Must not be empty.

    Examples
    --------
    >>> p = Pseudonymizer("s3cret")
    >>> p.pseudonym("12345") == p.pseudonym("12345") != Pseudonymizer("x").pseudonym("12345")
    True
    """

    def __init__(self, salt: str) -> None:
        if not salt:
            raise ValueError("pseudonymisation salt must not be empty")
        self._key = salt.encode("utf-8")

    def pseudonym(self, value: str) -> str:
        """HMAC-SHA256 of ``value`` with the salt, 16 hex characters."""
        mac = hmac.new(self._key, value.encode("utf-8"), hashlib.sha256)
        return mac.hexdigest()[:PSEUDONYM_CHARS]

    def row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``row`` with every non-empty identifier replaced.

        Error messages name the file they are about; the input and mask paths (and
        their file names) in ``error`` are replaced by the same pseudonyms.
        """
        out = dict(row)
        error = out.get("error")
        if isinstance(error, str) and error:
            for key in ("source", "mask"):
                v = out.get(key)
                if isinstance(v, str) and v:
                    error = error.replace(v, self.pseudonym(v))
                    name = PurePath(v).name
                    if name:
                        error = error.replace(name, self.pseudonym(v))
            out["error"] = error
        for key in IDENTIFIER_COLUMNS:
            v = out.get(key)
            if v is not None and v != "":
                out[key] = self.pseudonym(str(v))
        return out
