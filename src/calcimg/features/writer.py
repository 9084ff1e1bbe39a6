"""Feature table writers (CSV and Parquet), incremental and resumable.

The feature adapter's counterpart of :class:`calcimg.report.ResultsWriter`: rows are
written as each image is done, so an interrupted run keeps them, and a rerun skips the
inputs already in the table (keyed by ``input_hash`` and ``mask_hash``).

* CSV: rows are appended and flushed. A row bringing a column the file does not have
  yet (a descriptor first seen) rewrites the file once with the wider header.
* Parquet cannot be appended to, so each image's rows go to a part file in
  ``OUT.parts/``; closing merges the existing table and the parts into ``OUT`` and
  removes the parts. A run that was killed leaves its parts, which the next run merges.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from calcimg.errors import InputError

__all__ = ["TableWriter", "existing_keys", "table_format"]


def table_format(path: str | os.PathLike[str]) -> str:
    """ "csv" or "parquet" from the output file name.

    Raises
    ------
    InputError
        For any other suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InputError(f"--out {path}: unknown table format {suffix!r}; expected .csv or .parquet")


def _parts_dir(path: Path) -> Path:
    return path.with_name(path.name + ".parts")


def _key(row: Mapping[str, Any]) -> tuple[str, str]:
    def text(v: Any) -> str:
        return "" if v is None or (isinstance(v, float) and v != v) else str(v)

    return (text(row.get("input_hash")), text(row.get("mask_hash")))


def existing_keys(path: str | os.PathLike[str]) -> set[tuple[str, str]]:
    """(input_hash, mask_hash) of every row already in a table (and its parts)."""
    p = Path(path)
    keys: set[tuple[str, str]] = set()
    if table_format(p) == "csv":
        if p.is_file():
            with p.open(newline="", encoding="utf-8") as fh:
                keys.update(_key(r) for r in csv.DictReader(fh))
        return keys
    from calcimg.features.api import require_pandas

    pd = require_pandas()
    files = [p] if p.is_file() else []
    if _parts_dir(p).is_dir():
        files += sorted(_parts_dir(p).glob("*.parquet"))
    for f in files:
        df = pd.read_parquet(f)
        cols = [c for c in ("input_hash", "mask_hash") if c in df.columns]
        keys.update(_key(r) for r in df[cols].to_dict("records"))
    return keys


class TableWriter:
    """Write feature rows to a CSV or Parquet file incrementally.

    Parameters
    ----------
    path : path-like
        ``.csv`` or ``.parquet``.
    append : bool
        Keep the rows already there (resume) instead of starting a new table.
    """

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False) -> None:
        self.path = Path(path)
        self.format = table_format(self.path)
        self.n_rows = 0
        self._header: list[str] = []
        self._fh: Any = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.format == "csv":
            if append and self.path.is_file() and self.path.stat().st_size > 0:
                with self.path.open(newline="", encoding="utf-8") as fh:
                    self._header = next(csv.reader(fh), [])
                self._fh = self.path.open("a", newline="", encoding="utf-8")
            else:
                self._fh = self.path.open("w", newline="", encoding="utf-8")
        else:
            from calcimg.features.api import require_pandas

            require_pandas()
            parts = _parts_dir(self.path)
            if not append:
                if self.path.exists():
                    self.path.unlink()
                shutil.rmtree(parts, ignore_errors=True)
            parts.mkdir(exist_ok=True)
            self._n_parts = len(list(parts.glob("*.parquet")))

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Write one image's rows (flushed before returning)."""
        batch = [dict(r) for r in rows]
        if not batch:
            return
        if self.format == "csv":
            self._write_csv(batch)
        else:
            self._write_part(batch)
        self.n_rows += len(batch)

    def _write_csv(self, batch: list[dict[str, Any]]) -> None:
        new = [k for r in batch for k in r if k not in self._header]
        if new:
            widened = self._header + list(dict.fromkeys(new))
            if self._header:
                self._rewrite_csv(widened)
            else:
                self._fh.write(",".join(_csv_cell(c) for c in widened) + "\r\n")
            self._header = widened
        writer = csv.DictWriter(self._fh, fieldnames=self._header, extrasaction="raise")
        writer.writerows({k: _csv_value(v) for k, v in r.items()} for r in batch)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def _rewrite_csv(self, header: list[str]) -> None:
        self._fh.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        with (
            self.path.open(newline="", encoding="utf-8") as src,
            tmp.open("w", newline="", encoding="utf-8") as dst,
        ):
            reader = csv.DictReader(src)
            writer = csv.DictWriter(dst, fieldnames=header)
            writer.writeheader()
            writer.writerows(reader)
        os.replace(tmp, self.path)
        self._fh = self.path.open("a", newline="", encoding="utf-8")

    def _write_part(self, batch: list[dict[str, Any]]) -> None:
        from calcimg.features.api import require_pandas

        pd = require_pandas()
        part = _parts_dir(self.path) / f"{self._n_parts:08d}.parquet"
        tmp = part.with_suffix(".tmp")
        _frame(pd, batch).to_parquet(tmp, index=False)
        os.replace(tmp, part)  # a killed run never leaves a half-written part
        self._n_parts += 1

    def close(self) -> None:
        """Finish the table (for Parquet: merge the parts into the output file)."""
        if self.format == "csv":
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            return
        from calcimg.features.api import require_pandas

        pd = require_pandas()
        parts = _parts_dir(self.path)
        frames = []
        if self.path.is_file():
            frames.append(pd.read_parquet(self.path))
        files = sorted(parts.glob("*.parquet")) if parts.is_dir() else []
        frames += [pd.read_parquet(f) for f in files]
        frames = [f for f in frames if len(f.columns)]
        if frames:
            merged = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            tmp = self.path.with_name(self.path.name + ".tmp")
            _normalise(merged).to_parquet(tmp, index=False)
            os.replace(tmp, self.path)
        shutil.rmtree(parts, ignore_errors=True)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _csv_value(v: Any) -> Any:
    return "" if v is None else v


def _csv_cell(text: str) -> str:
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _frame(pd: Any, rows: list[dict[str, Any]]) -> Any:
    return _normalise(pd.DataFrame(rows))


def _normalise(df: Any) -> Any:
    """Columns of mixed Python objects (text with None, bools with None) as strings or
    nullable types, so that parts with differing inferred types still concatenate and
    pyarrow can write them."""
    for col in df.columns:
        if df[col].dtype == object:
            values = df[col].dropna()
            if len(values) and all(isinstance(v, bool) for v in values):
                df[col] = df[col].astype("boolean")
            elif len(values) and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in values
            ):
                df[col] = pd_to_numeric(df[col])
            else:
                df[col] = df[col].map(_text).astype("string")
    return df


def pd_to_numeric(series: Any) -> Any:
    import pandas as pd

    return pd.to_numeric(series)


def _text(v: Any) -> str | None:
    import pandas as pd

    return None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else str(v)
