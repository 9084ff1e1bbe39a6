"""A watched folder: files dropped there are copied into the data directory and analysed.

Polling (no inotify dependency, works on network shares). A file is taken once its size
and modification time are unchanged between two polls, so that a copy in progress is not
read half-written. Taken files are remembered in the database (path, size, mtime), so a
restart does not take them again; the folder itself is never written to.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from calcimg.errors import InputError
from calcimg.web.service import Service

__all__ = ["FolderWatcher"]

log = logging.getLogger(__name__)


class FolderWatcher:
    """Poll ``folder`` every ``interval_s`` seconds and hand new files to ``service``."""

    def __init__(
        self, service: Service, folder: str | os.PathLike[str], *, interval_s: float = 1.0
    ):
        self.service = service
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise InputError(f"--watch {folder}: not a folder")
        self.interval_s = interval_s
        self._last: dict[str, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="calcimg-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # keep watching whatever one poll met
                log.exception("polling %s failed", self.folder)
            self._stop.wait(self.interval_s)

    def poll(self) -> int:
        """One pass over the folder; returns how many files were taken."""
        taken = 0
        current: dict[str, tuple[int, int]] = {}
        for dirpath, dirnames, filenames in os.walk(self.folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or name.endswith((".part", ".tmp")):
                    continue
                path = Path(dirpath) / name
                try:
                    st = path.stat()
                except OSError:
                    continue
                key = str(path)
                stamp = (st.st_size, st.st_mtime_ns)
                current[key] = stamp
                if self._last.get(key) != stamp:
                    continue  # new or still changing: look again next poll
                if self.service.store.watched_seen(key, *stamp):
                    continue
                taken += self._take(path, key, stamp)
        self._last = current
        return taken

    def _take(self, path: Path, key: str, stamp: tuple[int, int]) -> int:
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return 0
        try:
            row = self.service.receive(data, original_name=path.name, origin="watch")
        except InputError as exc:
            log.warning("watched folder: %s", exc)
            self.service.store.watched_add(key, *stamp, "")
            return 0
        self.service.store.watched_add(key, *stamp, row.id)
        return 1
