"""The worklist database: one SQLite file under the data directory.

Every received image is a row keyed by a generated id (32 hex digits, never a path);
the analysis state, the summary shown on the worklist and the acknowledgement live here
so that a restart loses nothing. One connection is shared by the web handlers, the
worker and the DICOM node behind a lock (SQLite itself serialises writers anyway).
"""

from __future__ import annotations

import builtins
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["ID_PATTERN", "ImageRow", "Store", "is_valid_id", "new_id", "utc_now"]

ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
"""Image ids are uuid4 hex: checking them before any path is built is what keeps every
file the app touches inside the data directory."""

_COLUMNS = (
    ("id", "TEXT PRIMARY KEY"),
    ("received_at", "TEXT NOT NULL"),
    ("origin", "TEXT NOT NULL"),
    ("original_name", "TEXT NOT NULL"),
    ("file_name", "TEXT NOT NULL"),
    ("state", "TEXT NOT NULL"),
    ("status", "TEXT"),
    ("flag", "INTEGER"),
    ("n_findings", "INTEGER"),
    ("top_pattern", "TEXT"),
    ("top_category", "TEXT"),
    ("patient_id", "TEXT"),
    ("patient_name", "TEXT"),
    ("accession_number", "TEXT"),
    ("study_date", "TEXT"),
    ("study_instance_uid", "TEXT"),
    ("sop_instance_uid", "TEXT"),
    ("modality", "TEXT"),
    ("body_part", "TEXT"),
    ("error", "TEXT"),
    ("analysed_at", "TEXT"),
    ("analysis_ms", "REAL"),
    ("dicom_results", "TEXT"),
    ("forward_status", "TEXT"),
    ("acknowledged_at", "TEXT"),
)
_NAMES = tuple(name for name, _ in _COLUMNS)


def new_id() -> str:
    """A fresh image id (uuid4 hex)."""
    return uuid.uuid4().hex


def is_valid_id(image_id: str) -> bool:
    """True when ``image_id`` has the form of a generated id (nothing path-like)."""
    return bool(ID_PATTERN.match(image_id))


def utc_now() -> str:
    """Current time, ISO 8601 UTC with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageRow:
    """One worklist entry.

    ``state`` is ``received`` (on disk, waiting), ``analysing`` or ``done``; ``status``
    is the result's status (``ok``/``skipped``/``error``) once done.
    """

    id: str
    received_at: str
    origin: str
    original_name: str
    file_name: str
    state: str
    status: str | None = None
    flag: bool | None = None
    n_findings: int | None = None
    top_pattern: str | None = None
    top_category: str | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    accession_number: str | None = None
    study_date: str | None = None
    study_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    modality: str | None = None
    body_part: str | None = None
    error: str | None = None
    analysed_at: str | None = None
    analysis_ms: float | None = None
    dicom_results: str | None = None
    forward_status: str | None = None
    acknowledged_at: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    def to_dict(self) -> dict[str, Any]:
        """The worklist summary as the JSON API gives it."""
        d = {name: getattr(self, name) for name in _NAMES}
        d["acknowledged"] = self.acknowledged
        d["dicom_results"] = self.dicom_results.split(",") if self.dicom_results else []
        return d

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> ImageRow:
        d = {name: row[name] for name in _NAMES}
        d["flag"] = None if d["flag"] is None else bool(d["flag"])
        return cls(**d)


class Store:
    """The worklist database at ``data_dir/calcimg.sqlite``.

    Parameters
    ----------
    path : path-like
        The SQLite file (created with its tables if missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            cols = ", ".join(f"{n} {t}" for n, t in _COLUMNS)
            self._db.execute(f"CREATE TABLE IF NOT EXISTS images ({cols})")
            self._db.execute(
                "CREATE INDEX IF NOT EXISTS images_received ON images (received_at DESC)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS watched (path TEXT PRIMARY KEY, size INTEGER, "
                "mtime_ns INTEGER, image_id TEXT)"
            )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, row: ImageRow) -> None:
        """Insert a newly received image."""
        values = [getattr(row, n) for n in _NAMES]
        values[_NAMES.index("flag")] = None if row.flag is None else int(row.flag)
        marks = ", ".join("?" for _ in _NAMES)
        with self._tx() as db:
            db.execute(f"INSERT INTO images ({', '.join(_NAMES)}) VALUES ({marks})", values)

    def update(self, image_id: str, fields: Mapping[str, Any]) -> None:
        """Set some columns of one image."""
        unknown = set(fields) - set(_NAMES)
        if unknown:
            raise KeyError(f"unknown worklist columns {sorted(unknown)}; known: {_NAMES}")
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        values = [int(v) if isinstance(v, bool) else v for v in fields.values()]
        with self._tx() as db:
            db.execute(f"UPDATE images SET {sets} WHERE id = ?", [*values, image_id])

    def get(self, image_id: str) -> ImageRow | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
        return None if row is None else ImageRow.from_sql(row)

    def list(self, *, flagged: bool | None = None, limit: int = 200) -> builtins.list[ImageRow]:
        """Images newest first; ``flagged=True`` keeps flagged ones only."""
        where = ""
        if flagged is not None:
            where = "WHERE flag = 1" if flagged else "WHERE flag IS NOT 1"
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM images {where} ORDER BY received_at DESC, rowid DESC LIMIT ?",
                (int(limit),),
            ).fetchall()
        return [ImageRow.from_sql(r) for r in rows]

    def pending(self) -> builtins.list[ImageRow]:
        """Images received but not analysed (e.g. when the server stopped), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM images WHERE state != 'done' ORDER BY received_at, rowid"
            ).fetchall()
        return [ImageRow.from_sql(r) for r in rows]

    def acknowledge(self, image_id: str, *, when: str | None = None) -> str | None:
        """Mark an image as seen; returns the (first) acknowledgement time or None."""
        with self._tx() as db:
            db.execute(
                "UPDATE images SET acknowledged_at = COALESCE(acknowledged_at, ?) WHERE id = ?",
                (when or utc_now(), image_id),
            )
            row = db.execute(
                "SELECT acknowledged_at FROM images WHERE id = ?", (image_id,)
            ).fetchone()
        return None if row is None else row["acknowledged_at"]

    def watched_seen(self, path: str, size: int, mtime_ns: int) -> bool:
        """True when this exact file version was already taken from the watched folder."""
        with self._lock:
            row = self._db.execute(
                "SELECT size, mtime_ns FROM watched WHERE path = ?", (path,)
            ).fetchone()
        return row is not None and row["size"] == size and row["mtime_ns"] == mtime_ns

    def watched_add(self, path: str, size: int, mtime_ns: int, image_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO watched (path, size, mtime_ns, image_id) "
                "VALUES (?, ?, ?, ?)",
                (path, size, mtime_ns, image_id),
            )
