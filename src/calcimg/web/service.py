"""The worklist service: intake, the background analysis worker, and the data directory.

Web handlers, the watched-folder poller and the DICOM node all hand received bytes to
:meth:`Service.receive`, which writes the file under ``data_dir/incoming/`` (and fsyncs
it) before anything else happens, records it in the database, and queues it. One worker
thread analyses queued images with :mod:`calcimg.pipeline` and stores the result JSON,
the display renderings and, for DICOM inputs, the DICOM SR and SEG. Images received but
not analysed when the server stopped are queued again at start.

Layout of the data directory::

    calcimg.sqlite           worklist database (images, acknowledgements, watched files)
    incoming/ID.dcm|png|tif  received files, named by generated id
    results/ID.json          the result (calcimg.result/1)
    render/ID.npy            16-bit display base of the film
    render/ID.json           display window and finding outlines
    render/ID.thumb.png      worklist thumbnail
    dicom/ID/                DICOM results (SR, SEG)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calcimg.config import Config, load_config
from calcimg.errors import CalcimgError, InputError, StageError
from calcimg.ingest import read_radiograph
from calcimg.pipeline import analyze_radiograph, error_result
from calcimg.radiograph import Radiograph
from calcimg.result import Result, Status
from calcimg.web import render
from calcimg.web.store import ImageRow, Store, is_valid_id, new_id, utc_now

__all__ = ["KINDS", "DataPaths", "Service", "sniff_kind"]

log = logging.getLogger(__name__)

KINDS: dict[str, str] = {"dicom": ".dcm", "png": ".png", "tiff": ".tif"}
"""Accepted input kinds and the suffix a received file is stored with."""


def sniff_kind(head: bytes) -> str | None:
    """The kind of a file from its first bytes: ``dicom``, ``png``, ``tiff`` or None.

    DICOM must be a Part 10 file ("DICM" after the 128-byte preamble), which is what
    modalities, PACS exports and storescu send.
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


@dataclass(frozen=True, slots=True)
class DataPaths:
    """Where everything lives under the data directory; paths only from generated ids."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "calcimg.sqlite"

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def render(self) -> Path:
        return self.root / "render"

    @property
    def dicom(self) -> Path:
        return self.root / "dicom"

    def _checked(self, image_id: str) -> str:
        if not is_valid_id(image_id):
            raise InputError(f"invalid image id {image_id!r}; expected 32 hex digits")
        return image_id

    def result(self, image_id: str) -> Path:
        return self.results / f"{self._checked(image_id)}.json"

    def base(self, image_id: str) -> Path:
        return self.render / f"{self._checked(image_id)}.npy"

    def meta(self, image_id: str) -> Path:
        return self.render / f"{self._checked(image_id)}.json"

    def thumb(self, image_id: str) -> Path:
        return self.render / f"{self._checked(image_id)}.thumb.png"

    def dicom_dir(self, image_id: str) -> Path:
        return self.dicom / self._checked(image_id)

    def make(self) -> None:
        # patient images: readable by the server's user only
        for d in (self.root, self.incoming, self.results, self.render, self.dicom):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


AfterAnalysis = Callable[[ImageRow, Result, list[Path]], None]


class Service:
    """Intake, storage and background analysis for one data directory.

    Parameters
    ----------
    data_dir : path-like
        Everything is kept here (created if missing).
    config : Config, optional
        Analysis parameters (default: :func:`~calcimg.config.load_config`).
    dicom_results : bool
        Write a DICOM SR and SEG for each analysed DICOM image (``dicom/ID/``).
    after_analysis : callable, optional
        Called in the worker with (row, result, dicom result paths) after each image,
        e.g. to forward the SR and SEG to another DICOM node.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        config: Config | None = None,
        dicom_results: bool = True,
        after_analysis: AfterAnalysis | None = None,
    ) -> None:
        self.paths = DataPaths(Path(data_dir).resolve())
        self.paths.make()
        self.config = config or load_config()
        self.dicom_results = dicom_results
        self.after_analysis = after_analysis
        self.store = Store(self.paths.db)
        self._queue: queue.Queue[str | None] = queue.Queue()
        # DICOM results and forwarding run in their own thread: a film with hundreds of
        # findings takes many seconds to encode as SR, and must not hold up the next flag
        self._post_queue: queue.Queue[tuple[ImageRow, Result] | None] = queue.Queue()
        self._done = threading.Condition()
        self._thread: threading.Thread | None = None
        self._post_thread: threading.Thread | None = None
        self._outstanding = 0  # queued or in hand, in either thread
        self._started = False
        self._start_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the worker and queue images left unanalysed by a previous run."""
        with self._start_lock:
            if self._started:
                return
            self._started = True
            for row in self.store.pending():
                self._enqueue(row.id)
            self._thread = threading.Thread(target=self._run, name="calcimg-worker", daemon=True)
            self._thread.start()
            self._post_thread = threading.Thread(
                target=self._run_post, name="calcimg-dicom-results", daemon=True
            )
            self._post_thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker after the image in hand; queued images stay ``received``."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
        if self._post_thread is not None:
            self._post_queue.put(None)
            self._post_thread.join(timeout)
            self._post_thread = None
        self.store.close()

    # --------------------------------------------------------------------- intake

    def receive(self, data: bytes, *, original_name: str, origin: str) -> ImageRow:
        """Write received bytes to disk, record them, and queue their analysis.

        Raises
        ------
        InputError
            When the bytes are not a DICOM Part 10 file, PNG or TIFF.
        """
        kind = sniff_kind(data[:132])
        if kind is None:
            raise InputError(
                f"{original_name}: not a DICOM file (no 'DICM' at byte 128), PNG or TIFF; "
                f"found {data[:8]!r} at the start"
            )
        image_id = new_id()
        file_name = image_id + KINDS[kind]
        _write_atomic(self.paths.incoming / file_name, data)
        row = ImageRow(
            id=image_id,
            received_at=utc_now(),
            origin=origin,
            original_name=original_name[:255],
            file_name=file_name,
            state="received",
        )
        self.store.add(row)
        self.start()
        self._enqueue(image_id)
        return row

    def _enqueue(self, image_id: str) -> None:
        with self._done:
            self._outstanding += 1
        self._queue.put(image_id)

    # --------------------------------------------------------------------- worker

    def wait(self, image_id: str, timeout: float) -> ImageRow | None:
        """Block until ``image_id`` is analysed (or ``timeout`` s); returns its row."""
        deadline = time.monotonic() + timeout
        with self._done:
            while True:
                row = self.store.get(image_id)
                if row is None or row.state == "done":
                    return row
                left = deadline - time.monotonic()
                if left <= 0:
                    return row
                self._done.wait(min(left, 0.5))

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or in hand (analysis, DICOM results, forwarding)."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self._outstanding:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(min(left, 0.5))
        return True

    def _warm_up(self) -> None:
        """Run the stages once on a small drawn film so the first real image does not
        pay for lazy imports and first-call set-up (about 1 s)."""
        try:
            from calcimg.radiograph import SpacingSource

            # a small limb-like film (air, soft tissue, a bone band), not a uniform one:
            # stages may rightly refuse an image with nothing in it
            cols = np.arange(256, dtype=np.float32)
            row = np.where(cols < 32, 150.0, 1200.0 + 4.0 * cols)
            row[110:150] = 2800.0
            noise = np.random.default_rng(0).normal(0.0, 15.0, (256, 256))
            film = (row[None, :] + noise).astype(np.float32)
            rg = Radiograph(
                pixels=film,
                pixel_spacing_mm=(0.2, 0.2),
                spacing_source=SpacingSource.ASSUMED,
                calibrated=False,
            )
            result = analyze_radiograph(rg, config=self.config)
            base = render.display_base(rg)
            render.thumbnail_png(base, 0.5, 1.0, [], rg.shape)
            render.finding_outlines(result.label_mask, result.findings)
        except Exception:  # warming up is an optimisation only
            log.debug("warm-up failed", exc_info=True)

    def _run(self) -> None:
        self._warm_up()
        while True:
            image_id = self._queue.get()
            if image_id is None:
                return
            try:
                self._process(image_id)
            except Exception:  # the worker must survive anything one image does
                log.exception("analysis of %s failed", image_id)
                self.store.update(
                    image_id, {"state": "done", "status": "error", "error": "internal error"}
                )
            finally:
                with self._done:
                    self._outstanding -= 1
                    self._done.notify_all()

    def _run_post(self) -> None:
        while True:
            item = self._post_queue.get()
            if item is None:
                return
            row, result = item
            try:
                written = self._write_dicom_results(row, result)
                if self.after_analysis is not None:
                    self.after_analysis(row, result, written)
            except Exception:
                log.exception("after-analysis step of %s failed", row.id)
            finally:
                with self._done:
                    self._outstanding -= 1
                    self._done.notify_all()

    def _process(self, image_id: str) -> None:
        row = self.store.get(image_id)
        if row is None or row.state == "done":
            return
        self.store.update(image_id, {"state": "analysing"})
        t0 = time.perf_counter()
        result, rg = self._analyse(row)
        if rg is not None:
            self._write_renderings(image_id, rg, result)
        _write_atomic(self.paths.result(image_id), (result.to_json() + "\n").encode())
        top = max(result.findings, key=lambda f: f.confidence, default=None)
        fields: dict[str, Any] = {
            "state": "done",
            "status": str(result.status),
            "flag": result.flag,
            "n_findings": len(result.findings),
            "top_pattern": None if top is None else str(top.pattern),
            "top_category": str(result.categories[0].name) if result.categories else None,
            "study_instance_uid": result.study_instance_uid,
            "sop_instance_uid": result.sop_instance_uid,
            "modality": result.modality,
            "body_part": result.body_part,
            "error": None if result.error is None else result.error.message,
            "analysed_at": utc_now(),
            "analysis_ms": round((time.perf_counter() - t0) * 1000.0, 1),
        }
        if rg is not None:
            fields.update(
                patient_id=rg.patient_id,
                patient_name=rg.patient_name,
                accession_number=rg.accession_number,
                study_date=rg.study_date,
            )
        with self._done:
            self.store.update(image_id, fields)
            # DICOM results after the worklist shows the flag: they are not urgent
            self._outstanding += 1
            self._post_queue.put((row, result))
            self._done.notify_all()

    def _analyse(self, row: ImageRow) -> tuple[Result, Radiograph | None]:
        path = self.paths.incoming / row.file_name
        name = f"incoming/{row.file_name}"
        t0 = time.perf_counter()
        try:
            rg = read_radiograph(path, params=self.config.ingest)
        except CalcimgError as exc:
            return error_result(name, exc, params_hash=self.config.hash()), None
        except Exception as exc:  # a decoder failing in a way ingest does not map yet
            log.exception("unexpected error reading %s", path)
            err = StageError(f"{row.original_name}: unexpected error while reading: {exc}")
            return error_result(name, err, params_hash=self.config.hash()), None
        rg = dataclasses.replace(rg, source=name)
        decode_ms = (time.perf_counter() - t0) * 1000.0
        result = analyze_radiograph(rg, config=self.config, timing={"decode": decode_ms})
        return result, rg

    def _write_renderings(self, image_id: str, rg: Radiograph, result: Result) -> None:
        base = render.display_base(rg)
        wc, ww = render.default_window(rg, base)
        outlines = render.finding_outlines(result.label_mask, result.findings)
        np.save(self.paths.base(image_id), base)
        meta = {
            "rows": rg.shape[0],
            "columns": rg.shape[1],
            "display_shape": list(base.shape),
            "window": [wc, ww],
            "outlines": outlines,
        }
        _write_atomic(self.paths.meta(image_id), json.dumps(meta).encode())
        thumb = render.thumbnail_png(base, wc, ww, outlines, rg.shape)
        _write_atomic(self.paths.thumb(image_id), thumb)

    def _write_dicom_results(self, row: ImageRow, result: Result) -> list[Path]:
        if not (self.dicom_results and row.file_name.endswith(".dcm")):
            return []
        if result.status is not Status.OK:
            return []
        try:
            import pydicom

            from calcimg.dicomout import write_dicom_results

            ds = pydicom.dcmread(self.paths.incoming / row.file_name, stop_before_pixels=True)
            written = write_dicom_results(result, ds, self.paths.dicom_dir(row.id))
        except Exception as exc:  # results as DICOM are an extra; the worklist stands
            log.exception("DICOM results for %s failed", row.id)
            self.store.update(row.id, {"dicom_results": None, "forward_status": f"error: {exc}"})
            return []
        self.store.update(row.id, {"dicom_results": ",".join(p.name for p in written)})
        return written

    # ---------------------------------------------------------------------- reads

    def result(self, image_id: str) -> Result | None:
        """The stored result of an analysed image (without its label mask)."""
        path = self.paths.result(image_id)
        if not path.is_file():
            return None
        return Result.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def result_dict(self, image_id: str) -> dict[str, Any] | None:
        path = self.paths.result(image_id)
        if not path.is_file():
            return None
        d: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return d

    def meta(self, image_id: str) -> dict[str, Any] | None:
        path = self.paths.meta(image_id)
        if not path.is_file():
            return None
        d: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return d

    def film_png(self, image_id: str, wc: float | None, ww: float | None) -> bytes | None:
        """The film rendered under a window (normalised units; default: stored window)."""
        meta = self.meta(image_id)
        path = self.paths.base(image_id)
        if meta is None or not path.is_file():
            return None
        base = np.load(path, allow_pickle=False)
        dc, dw = meta["window"]
        return render.render_png(base, dc if wc is None else wc, dw if ww is None else ww)
