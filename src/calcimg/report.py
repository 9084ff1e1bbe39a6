"""Writers: the only place calcimg writes files.

:class:`ResultsWriter` appends one validated contract line per result to
``results.jsonl``, flushing and fsyncing each line so that an interrupted run keeps every
result already computed.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import IO

from calcimg.result import Result, validate_result_dict

__all__ = ["RESULTS_FILE", "ResultsWriter"]

RESULTS_FILE = "results.jsonl"


class ResultsWriter:
    """Append results to ``DIR/results.jsonl`` (or a given stream), one line each.

    Parameters
    ----------
    out_dir : path-like or None
        Folder to write ``results.jsonl`` into (created if needed).
    stream : text stream, optional
        Write here instead (e.g. stdout) when ``out_dir`` is None.
    append : bool
        Keep existing lines (resuming) instead of starting a new file.
    validate : bool
        Check every line against the shipped JSON Schema before writing it.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str] | None = None,
        *,
        stream: IO[str] | None = None,
        append: bool = False,
        validate: bool = True,
    ) -> None:
        self.validate = validate
        self._own = False
        self.path: Path | None = None
        if out_dir is not None:
            d = Path(out_dir)
            d.mkdir(parents=True, exist_ok=True)
            self.path = d / RESULTS_FILE
            self._fh: IO[str] = self.path.open("a" if append else "w", encoding="utf-8")
            self._own = True
        elif stream is not None:
            self._fh = stream
        else:
            raise ValueError("ResultsWriter needs out_dir or stream")

    def write(self, result: Result) -> None:
        """Validate and append one result line, flushed to disk."""
        d = result.to_dict()
        if self.validate:
            validate_result_dict(d)
        self._fh.write(result.to_json() + "\n")
        self._fh.flush()
        if self._own:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._own:
            self._fh.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
