"""Batch analysis of folders: local worker processes or a Dask cluster, resumable.

An adapter (no algorithm code): every input goes through
:func:`calcimg.pipeline.analyze_file` in a worker process, and every file written goes
through :mod:`calcimg.report`. What this module adds is the bookkeeping that lets a
department point calcimg at tens of thousands of studies:

- **Bounded parallelism.** At most ``2 x workers`` inputs are in flight; each is read,
  decoded and analysed inside its worker, which returns only the result (a few kB), so
  memory stays flat whatever the folder size. Local workers are recycled every
  :data:`TASKS_PER_CHILD` inputs so a leaking decoder cannot grow without bound.
- **Resumable and reproducible.** The main process appends each input's results to
  ``results.jsonl`` in one write followed by fsync (:class:`~calcimg.report.ResultsWriter`).
  A re-run skips an input whose path and content hash (SHA-256 of the bytes, the
  ``input_hash`` of every result) already have results made with the same calcimg
  version and parameter hash, unless ``overwrite``. All tables and the report are
  regenerated from ``results.jsonl`` at the end, sorted, so a resumed run ends with the
  same outputs as an uninterrupted one.
- **Duplicates.** Files with the same content (same hash) are analysed once; each path
  still gets its own result lines, copies of the first analysis with ``source`` set to
  that path (``images.csv`` names the first path in ``duplicate_of``). A file with
  different bytes but a SOP Instance UID already analysed in this folder (the same
  instance re-sent, e.g. recompressed) reuses that analysis the same way.
- **Failures stay local.** A bad file becomes an error result (the pipeline's
  contract); a worker process that dies (a decoder segfault, the OOM killer) becomes an
  error result for the file it was analysing, found by re-running the inputs that were
  in flight one at a time in fresh processes; the batch goes on.
- **Interrupts.** The first Ctrl-C (SIGINT) or SIGTERM stops submitting, terminates the
  workers and leaves ``results.jsonl`` with whole lines only; a re-run resumes.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import fnmatch
import functools
import hashlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from calcimg import __version__
from calcimg.config import Config, load_config
from calcimg.errors import CalcimgError, ConfigError, NotAnImageError, StageError
from calcimg.ingest import Header, iter_inputs, read_header, read_radiograph
from calcimg.pipeline import analyze_file, error_result
from calcimg.process import steady_allocator
from calcimg.report import (
    RESULTS_FILE,
    ResultsWriter,
    check_parquet_available,
    latest_results,
    read_results,
    write_outputs,
    write_overlay,
)
from calcimg.result import Result, Status

__all__ = [
    "OVERLAY_CHOICES",
    "SELECT_KEYS",
    "TASKS_PER_CHILD",
    "BatchOptions",
    "BatchSummary",
    "NotSelectedError",
    "Progress",
    "Selector",
    "analyze_one",
    "final_results",
    "identify_one",
    "run_batch",
    "summary_table",
]

log = logging.getLogger(__name__)

TASKS_PER_CHILD = 200
"""Inputs a local worker process analyses before it is replaced by a fresh one."""

OVERLAY_CHOICES = ("flagged", "all", "none")
SELECT_KEYS = ("modality", "body_part", "series_description")


class NotSelectedError(NotAnImageError):
    """The input's header does not match ``--select``; reported as ``skipped``."""


# ------------------------------------------------------------------------------ select


_SELECT_TAGS = {
    "modality": "(0008,0060) Modality",
    "body_part": "(0018,0015) Body Part Examined",
    "series_description": "(0008,103E) Series Description",
}


@dataclass(frozen=True, slots=True)
class Selector:
    """Which inputs to analyse, by header values, like MONAI Deploy's series selector.

    Each key holds case-insensitive glob patterns (``fnmatch``: ``*``, ``?``, ``[..]``);
    an input is selected when, for every key given, its value matches one of the key's
    patterns. Example: ``Selector.parse(["modality=CR,DX", "body_part=KNEE,HAND*"])``.
    """

    rules: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def parse(cls, specs: Sequence[str]) -> Selector:
        """Parse ``KEY=PATTERN[,PATTERN...]`` strings (repeated keys add patterns).

        Raises
        ------
        ConfigError
            Unknown key (the valid ones are listed) or no pattern.
        """
        merged: dict[str, list[str]] = {}
        for spec in specs:
            key, sep, value = spec.partition("=")
            key = key.strip().lower().replace("-", "_")
            if not sep or key not in SELECT_KEYS:
                raise ConfigError(
                    f"--select {spec!r}: expected KEY=PATTERN[,PATTERN...] with KEY one of "
                    f"{', '.join(SELECT_KEYS)}"
                )
            patterns = [p.strip() for p in value.split(",") if p.strip()]
            if not patterns:
                raise ConfigError(f"--select {spec!r}: no pattern after '='")
            merged.setdefault(key, []).extend(patterns)
        return cls(tuple((k, tuple(v)) for k, v in merged.items()))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def reason(self, header: Header) -> str | None:
        """None when ``header`` is selected, else why not (one sentence)."""
        values = {
            "modality": header.modality,
            "body_part": header.body_part_examined,
            "series_description": header.series_description,
        }
        for key, patterns in self.rules:
            value = values[key]
            wanted = ",".join(patterns)
            if value is None:
                what = (
                    "an image export without DICOM header"
                    if header.kind == "image_export"
                    else f"{_SELECT_TAGS[key]} is missing"
                )
                return f"{what}; --select {key}={wanted}"
            if not any(fnmatch.fnmatchcase(value.upper(), p.upper()) for p in patterns):
                return f"{_SELECT_TAGS[key]} is {value!r}; --select {key}={wanted}"
        return None


# ----------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchOptions:
    """How to run a batch.

    Attributes
    ----------
    out_dir : Path or None
        Output folder; None streams JSON lines to ``stream`` (no resume, no files).
    workers : int
        Local worker processes; 0 analyses in the calling process (debugging).
    scheduler : str or None
        ``"tcp://host:8786"`` for a running Dask scheduler, ``"local"`` for a Dask
        ``LocalCluster`` of ``workers`` processes; None for local processes.
    overwrite : bool
        Re-analyse inputs already in ``results.jsonl`` (which is started afresh).
    select : Selector
    overlays : str
        ``"flagged"`` (default), ``"all"`` or ``"none"``.
    report, parquet : bool
        Write ``report.html`` / Parquet tables at the end.
    config : Config
    context : object
        Passed unchanged as ``context=`` to :func:`~calcimg.pipeline.analyze_file`.
    dicom_out : Path or None
        Write a Comprehensive SR and a binary SEG of every analysed image here
        (:mod:`calcimg.dicomout`, the ``dicom`` extra).
    """

    out_dir: Path | None = None
    workers: int = 1
    scheduler: str | None = None
    overwrite: bool = False
    select: Selector = field(default_factory=Selector)
    overlays: str = "flagged"
    report: bool = True
    parquet: bool = False
    config: Config = field(default_factory=load_config)
    context: Any = None
    dicom_out: Path | None = None

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError(f"--workers is {self.workers}; expected 0 or more")
        if self.overlays not in OVERLAY_CHOICES:
            raise ConfigError(
                f"overlays is {self.overlays!r}; expected one of {', '.join(OVERLAY_CHOICES)}"
            )
        if self.scheduler is not None and not (
            self.scheduler == "local" or "://" in self.scheduler
        ):
            raise ConfigError(
                f"--scheduler {self.scheduler!r}: expected 'local' or an address such as "
                "tcp://host:8786"
            )


@dataclass(slots=True)
class BatchSummary:
    """Counts of one batch run (this run's work, plus what was found already done)."""

    inputs: int = 0
    analysed: int = 0
    flagged: int = 0
    skipped: int = 0
    errors: int = 0
    already_done: int = 0
    reused: int = 0
    elapsed_s: float = 0.0
    computed: int = 0
    interrupted: bool = False
    final_errors: int = 0

    @property
    def images_per_s(self) -> float:
        """Results computed by workers per second of wall time."""
        return self.computed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def count(self, r: Result) -> None:
        if r.status is Status.OK:
            self.analysed += 1
            self.flagged += int(r.flag)
        elif r.status is Status.SKIPPED:
            self.skipped += 1
        else:
            self.errors += 1


def summary_table(s: BatchSummary) -> str:
    """The final summary as a small aligned text table."""
    rows = [
        ("inputs", f"{s.inputs}"),
        ("analysed", f"{s.analysed}"),
        ("flagged", f"{s.flagged}"),
        ("skipped", f"{s.skipped}"),
        ("errors", f"{s.errors}"),
        ("already done", f"{s.already_done}"),
        ("duplicates reused", f"{s.reused}"),
        ("time", f"{s.elapsed_s:.1f} s"),
        ("images/s", f"{s.images_per_s:.2f}"),
    ]
    if s.interrupted:
        rows.append(("status", "INTERRUPTED (re-run to resume)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


# ---------------------------------------------------------------------------- progress


class Progress:
    """A progress bar with rate and ETA on a terminal; periodic plain lines otherwise.

    Parameters
    ----------
    total : int
        Inputs expected.
    stream : text stream
        Usually ``sys.stderr``.
    tty : bool, optional
        Draw a bar (default: ``stream.isatty()``).
    interval_s : float
        Seconds between plain lines when not a terminal.
    """

    def __init__(
        self, total: int, stream: IO[str], *, tty: bool | None = None, interval_s: float = 10.0
    ) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.interval_s = interval_s
        self.t0 = time.monotonic()
        self._last = float("-inf")  # the first update always shows
        self._drawn = False

    def _text(self, done: int, s: BatchSummary) -> str:
        elapsed = time.monotonic() - self.t0
        rate = s.computed / elapsed if elapsed > 0 else 0.0
        left = self.total - done
        eta = _hms(left / rate) if rate > 0 else "?"
        return (
            f"{done}/{self.total} {rate:.2f} img/s ETA {eta} | ok {s.analysed} "
            f"flag {s.flagged} skip {s.skipped} err {s.errors} done {s.already_done}"
        )

    def update(self, done: int, s: BatchSummary, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if not force and now - self._last < 0.2:
                return
            frac = done / self.total if self.total else 1.0
            bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
            self.stream.write(f"\r\x1b[K[{bar}] {self._text(done, s)}")
            self._drawn = True
        else:
            if not force and now - self._last < self.interval_s:
                return
            self.stream.write(f"progress: {self._text(done, s)}\n")
        self._last = now
        self.stream.flush()

    def message(self, text: str, out: IO[str]) -> None:
        """Print a line without garbling the bar."""
        if self.tty and self._drawn and out is self.stream:
            self.stream.write("\r\x1b[K")
        out.write(text + "\n")
        out.flush()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


# ------------------------------------------------------------------------------ worker


def analyze_one(
    path: str,
    config: Config,
    context: Any,
    out_dir: str | None,
    overlays: str,
    dicom_dir: str | None = None,
) -> list[dict[str, Any]]:
    """Analyse one input in a worker: every frame, plus its overlays and DICOM results.

    Returns the results as contract dicts (small to send back: the label mask and the
    pixels stay in the worker). Overlays are drawn here because only the worker holds
    the in-memory ``label_mask``; the film is read again for flagged frames only.
    """
    out: list[dict[str, Any]] = []
    for r in analyze_file(path, context=context, config=config):
        want = overlays == "all" or (overlays == "flagged" and r.flag)
        if out_dir is not None and want and r.status is Status.OK:
            try:
                rg = read_radiograph(path, frame=r.frame, params=config.ingest)
                write_overlay(out_dir, r, rg.pixels, voi_window=rg.voi_window)
            except Exception:  # an overlay is a convenience; never lose the result
                log.exception("%s: overlay failed", path)
        if dicom_dir is not None and r.status is Status.OK:
            # SR and SEG need the label mask, which only the worker holds
            from calcimg.dicomout import write_dicom_results_for_file

            try:
                write_dicom_results_for_file(r, path, dicom_dir)
            except Exception:  # a DICOM result is an extra output; never lose the result
                log.exception("%s: DICOM SR/SEG failed", path)
        out.append(r.to_dict())
    return out


def _worker_init(level: int = logging.WARNING) -> None:
    # Ctrl-C reaches the whole process group; only the main process decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    # Per-file warnings (assumed spacing, ...) are in each result already; thousands of
    # them on the console would bury the progress. -v brings them back.
    logging.basicConfig(
        level=level if level < logging.WARNING else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _one_thread()
    steady_allocator()


def _one_thread() -> None:
    """Parallelism is one image per process: OpenCV's own thread pool would oversubscribe
    the cores (N workers x N threads) and slow every worker down."""
    import cv2

    cv2.setNumThreads(1)


# ---------------------------------------------------------------------------- backends


class _Backend:
    """Submit work, wait for some to finish; in process, local processes or Dask.

    Work is ``(kind, path)`` with ``kind`` ``"identify"`` (content hash and header:
    cheap, so that the main process decides what to skip without reading files itself)
    or ``"analyze"``.
    """

    def __init__(self, tasks: Mapping[str, Callable[[str], Any]]) -> None:
        self.tasks = tasks

    def submit(self, kind: str, path: str) -> Any:
        raise NotImplementedError

    def wait(self, futures: Sequence[Any], timeout: float) -> list[Any]:
        raise NotImplementedError

    def outcome(self, fut: Any) -> Any:
        raise NotImplementedError

    def close(self, *, kill: bool) -> None:
        raise NotImplementedError


class _Inline(_Backend):
    """Work in the calling process (``--workers 0``)."""

    def submit(self, kind: str, path: str) -> Any:
        fut: cf.Future[Any] = cf.Future()
        try:
            fut.set_result(self.tasks[kind](path))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def wait(self, futures: Sequence[Any], timeout: float) -> list[Any]:
        return list(futures)

    def outcome(self, fut: Any) -> Any:
        return fut.result()

    def close(self, *, kill: bool) -> None:
        return None


class _WorkerDiedError(Exception):
    """A worker process ended abruptly while working on an input."""


class _Local(_Backend):
    """A process pool; a broken pool is replaced and its suspects isolated."""

    def __init__(self, workers: int, tasks: Mapping[str, Callable[[str], Any]]) -> None:
        super().__init__(tasks)
        self.workers = workers
        # spawn: a clean interpreter per worker with the parent's sys.path (3.11's
        # forkserver drops it), safe whatever threads the parent runs (fork is not), and
        # required for max_tasks_per_child. Start-up (~1 s of imports) is paid once per
        # TASKS_PER_CHILD inputs.
        self.ctx = multiprocessing.get_context("spawn")
        self.pool = self._new_pool(workers)

    def _new_pool(self, n: int) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=n,
            mp_context=self.ctx,
            initializer=_worker_init,
            initargs=(logging.getLogger().getEffectiveLevel(),),
            max_tasks_per_child=TASKS_PER_CHILD,
        )

    def submit(self, kind: str, path: str) -> Any:
        try:
            return self.pool.submit(self.tasks[kind], path)
        except cf.process.BrokenProcessPool as exc:
            # A worker died since the last wait: hand back a failed future so that this
            # input joins the suspects like the work that was in flight.
            fut: cf.Future[Any] = cf.Future()
            fut.set_exception(exc)
            return fut

    def wait(self, futures: Sequence[Any], timeout: float) -> list[Any]:
        done, _ = cf.wait(futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def outcome(self, fut: Any) -> Any:
        try:
            return fut.result()
        except cf.process.BrokenProcessPool as exc:
            raise _WorkerDiedError(str(exc)) from exc

    def restart(self) -> None:
        self._kill(self.pool)
        self.pool = self._new_pool(self.workers)

    def isolate(self, kind: str, path: str) -> Any:
        """Run one input alone in a fresh process; _WorkerDiedError if it dies again."""
        pool = self._new_pool(1)
        try:
            return self.outcome(pool.submit(self.tasks[kind], path))
        finally:
            self._kill(pool)

    @staticmethod
    def _kill(pool: cf.ProcessPoolExecutor) -> None:
        # ProcessPoolExecutor has no public terminate; its worker processes are ours.
        procs = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)

    def close(self, *, kill: bool) -> None:
        if kill:
            self._kill(self.pool)
        else:
            self.pool.shutdown(wait=True)


class _Dask(_Backend):
    """Dask distributed: a scheduler address or a LocalCluster."""

    def __init__(
        self, scheduler: str, workers: int, tasks: Mapping[str, Callable[[str], Any]]
    ) -> None:
        super().__init__(tasks)
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise ConfigError(
                "--scheduler needs dask.distributed, which is not installed; install the "
                "distributed extra (pip install 'calcimg[distributed]')"
            ) from exc
        self.cluster = None
        if logging.getLogger().getEffectiveLevel() >= logging.WARNING:
            # distributed logs every start and stop at INFO; keep the console for results.
            logging.getLogger("distributed").setLevel(logging.WARNING)
        if scheduler == "local":
            # Processes started while SIGINT is ignored keep ignoring it (and Python does
            # not install KeyboardInterrupt in them): Ctrl-C reaches the whole process
            # group, and only this process should act on it.
            main = threading.current_thread() is threading.main_thread()
            old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
            try:
                self.cluster = LocalCluster(
                    n_workers=max(1, workers),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",  # any free port: never clash with a site's 8787
                )
            finally:
                if main:
                    signal.signal(signal.SIGINT, old)
            self.client = Client(self.cluster)
        else:
            self.client = Client(scheduler)
        self._n = 0

    def submit(self, kind: str, path: str) -> Any:
        self._n += 1
        # pure=False: the same path submitted again (e.g. --overwrite) is new work.
        return self.client.submit(
            self.tasks[kind], path, pure=False, key=f"calcimg-{kind}-{self._n}"
        )

    def wait(self, futures: Sequence[Any], timeout: float) -> list[Any]:
        from distributed import wait

        try:
            done, _ = wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        return list(done)

    def outcome(self, fut: Any) -> Any:
        from distributed import KilledWorker

        try:
            return fut.result()
        except KilledWorker as exc:
            raise _WorkerDiedError(str(exc)) from exc

    def close(self, *, kill: bool) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


# ------------------------------------------------------------------------------- state


def _sha256(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError:
        return None  # the analysis reports why the file cannot be read
    return h.hexdigest()


def identify_one(path: str) -> tuple[str | None, Header | None]:
    """Content hash (SHA-256 of the bytes) and header of one input, in a worker.

    The header is None when it cannot be read; the analysis then reports why.
    """
    h = _sha256(Path(path))
    try:
        header: Header | None = read_header(path)
    except CalcimgError:
        header = None
    return h, header


@dataclass(eq=False, slots=True)
class _Task:
    path: str
    kind: str = "identify"
    input_hash: str | None = None
    header: Header | None = None
    attempts: int = 0


@dataclass(slots=True)
class _State:
    """What results.jsonl already holds (made with this version and parameter hash)."""

    by_hash: dict[str, list[Result]] = field(default_factory=dict)
    by_sop: dict[str, list[Result]] = field(default_factory=dict)
    source_hash: dict[str, str | None] = field(default_factory=dict)

    def add(self, results: Sequence[Result], input_hash: str | None) -> None:
        if not results:
            return
        self.source_hash[results[0].source] = input_hash
        if input_hash is None:
            return
        self.by_hash.setdefault(input_hash, list(results))
        for r in results:
            if r.sop_instance_uid and r.status is Status.OK:
                self.by_sop.setdefault(r.sop_instance_uid, list(results))


def _load_state(path: Path, params_hash: str) -> _State:
    state = _State()
    grouped: dict[str, list[Result]] = {}
    for r in read_results(path):
        if r.calcimg_version != __version__ or r.params_hash != params_hash:
            continue
        grouped.setdefault(r.source, [])
        # A later line for the same (source, frame) supersedes the earlier one.
        grouped[r.source] = [x for x in grouped[r.source] if x.frame != r.frame] + [r]
    for results in grouped.values():
        results.sort(key=lambda r: r.frame)
        state.add(results, results[0].input_hash)
    return state


def _as_copy(results: Sequence[Result], path: str, input_hash: str | None) -> list[Result]:
    return [dataclasses.replace(r, source=path, input_hash=input_hash) for r in results]


# -------------------------------------------------------------------------------- run


class _Stop:
    """SIGINT/SIGTERM: the first asks to stop cleanly, a second SIGINT interrupts now."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def run_batch(
    paths: Sequence[str | os.PathLike[str]],
    options: BatchOptions,
    *,
    stream: IO[str] | None = None,
    progress_stream: IO[str] | None = None,
    on_result: Callable[[Result], None] | None = None,
    tty: bool | None = None,
) -> BatchSummary:
    """Analyse every input under ``paths`` as :class:`BatchOptions` says.

    Each input goes through two pieces of work on the workers: *identify* (SHA-256 of
    the bytes and the header, :func:`identify_one`) and, when the main process decides
    it is needed, *analyze* (:func:`analyze_one`). The main process never reads an
    input, so it stays light whatever the number of workers.

    Parameters
    ----------
    paths : sequence of path-like
        Files, folders (recursive) and DICOMDIRs (:func:`~calcimg.ingest.iter_inputs`).
    options : BatchOptions
    stream : text stream, optional
        Where JSON lines go when ``options.out_dir`` is None (default stdout).
    progress_stream : text stream, optional
        Progress bar / lines (default stderr); none when ``out_dir`` is None.
    on_result : callable, optional
        Called with every result written in this run (for per-image messages).
    tty : bool, optional
        Force the bar on or off (default: ``progress_stream.isatty()``).

    Returns
    -------
    BatchSummary

    Raises
    ------
    InputError
        A given path does not exist.
    ConfigError
        Bad options (``--parquet`` without pyarrow, bad scheduler address, ...).
    """
    t0 = time.perf_counter()
    cfg = options.config
    params_hash = cfg.hash()
    if options.parquet:
        check_parquet_available()
    out_dir = options.out_dir.resolve() if options.out_dir is not None else None
    if options.workers > 0 or options.scheduler is not None:
        _check_picklable(options)
    inputs = [str(item.path) for item in iter_inputs(paths)]
    summary = BatchSummary(inputs=len(inputs))

    state = _State()
    if out_dir is not None and not options.overwrite:
        state = _load_state(out_dir / RESULTS_FILE, params_hash)
    if out_dir is not None:
        writer = ResultsWriter(out_dir, append=not options.overwrite)
    else:
        writer = ResultsWriter(stream=stream or sys.stdout)
    progress = (
        Progress(len(inputs), progress_stream or sys.stderr, tty=tty)
        if out_dir is not None
        else None
    )

    overlay_dir = str(out_dir) if out_dir is not None and options.overlays != "none" else None
    quiet = options.scheduler is not None and logging.getLogger().getEffectiveLevel() >= 30
    tasks: dict[str, Callable[[str], Any]] = {
        "identify": identify_one,
        "analyze": functools.partial(
            _call_analyze_one,
            config=cfg,
            context=options.context,
            out_dir=overlay_dir,
            overlays=options.overlays,
            dicom_dir=None if options.dicom_out is None else str(options.dicom_out),
            quiet=quiet,
            in_worker=options.scheduler is not None,
        ),
    }
    backend: _Backend
    if options.scheduler is not None:
        backend = _Dask(options.scheduler, options.workers or 1, tasks)
    elif options.workers == 0 or len(inputs) <= 1:
        # One input gains nothing from a pool and would pay its start-up.
        backend = _Inline(tasks)
    else:
        backend = _Local(min(options.workers, len(inputs)), tasks)

    # Enough in flight to keep every worker busy (Dask adds a scheduler round trip per
    # piece of work, so it gets more), few enough that memory stays bounded.
    per_worker = 4 if options.scheduler is not None else 2
    window = max(2, per_worker * max(1, options.workers))
    pending: Iterator[str] = iter(inputs)
    ready: deque[_Task] = deque()  # identified, to analyse (before new inputs)
    retry: deque[_Task] = deque()  # identify work lost with a broken pool
    in_flight: dict[Any, _Task] = {}
    claimed_hash: dict[str, _Task] = {}  # content being analysed -> its task
    claimed_sop: dict[str, _Task] = {}
    waiting: dict[int, list[_Task]] = {}  # id(task) -> duplicates awaiting its result
    progress_count = [0]

    def emit(results: Sequence[Result]) -> None:
        writer.write_many(results)
        for r in results:
            summary.count(r)
            if on_result is not None:
                on_result(r)

    def settled() -> None:
        progress_count[0] += 1

    def finish(t: _Task, results: list[Result]) -> None:
        results = [
            r
            if r.input_hash or t.input_hash is None
            else dataclasses.replace(r, input_hash=t.input_hash)
            for r in results
        ]
        emit(results)
        summary.computed += len(results)
        settled()
        state.add(results, t.input_hash)
        for key, claims in ((t.input_hash, claimed_hash), (_sop(t), claimed_sop)):
            if key is not None and claims.get(key) is t:
                del claims[key]
        for dup in waiting.pop(id(t), []):
            emit(_as_copy(results, dup.path, dup.input_hash))
            summary.reused += 1
            settled()

    def decide(t: _Task) -> None:
        """After identify: skip, reuse, wait for a duplicate, or queue for analysis."""
        h, header, path = t.input_hash, t.header, t.path
        if (
            h is not None
            and not options.overwrite
            and state.source_hash.get(path, "") == h
            and h in state.by_hash
        ):
            summary.already_done += 1
            settled()
            return
        if options.select and header is not None:
            why = options.select.reason(header)
            if why is not None:
                exc = NotSelectedError(f"{path}: not selected: {why}")
                r = dataclasses.replace(
                    error_result(path, exc, params_hash=params_hash),
                    input_hash=h,
                    sop_instance_uid=header.sop_instance_uid,
                    study_instance_uid=header.study_instance_uid,
                    series_instance_uid=header.series_instance_uid,
                    modality=header.modality,
                    body_part=header.body_part_examined,
                )
                emit([r])
                state.add([r], h)
                settled()
                return
        sop = _sop(t)
        if h is not None and h in state.by_hash:
            emit(_as_copy(state.by_hash[h], path, h))
            summary.reused += 1
            settled()
            return
        if sop is not None and sop in state.by_sop and not options.overwrite:
            emit(_as_copy(state.by_sop[sop], path, h))
            summary.reused += 1
            settled()
            return
        owner = (claimed_hash.get(h) if h is not None else None) or (
            claimed_sop.get(sop) if sop is not None and not options.overwrite else None
        )
        if owner is not None:
            waiting.setdefault(id(owner), []).append(t)
            return
        if h is not None:
            claimed_hash[h] = t
        if sop is not None:
            claimed_sop.setdefault(sop, t)
        t.kind = "analyze"
        ready.append(t)

    def crashed(t: _Task, why: str) -> list[Result]:
        exc = StageError(
            f"{t.path}: the worker process analysing this file died ({why}); a crash in "
            "a pixel decoder or a stage, or the process was killed (e.g. out of memory)"
        )
        return [error_result(t.path, exc, params_hash=params_hash)]

    def done_with(t: _Task, value: Any) -> None:
        if t.kind == "identify":
            t.input_hash, t.header = value
            decide(t)
        else:
            finish(t, [Result.from_dict(d) for d in value])

    with writer, _Stop() as stop:
        try:
            while True:
                while len(in_flight) < window and not stop.requested:
                    if ready:
                        t = ready.popleft()
                    elif retry:
                        t = retry.popleft()
                    else:
                        path = next(pending, None)
                        if path is None:
                            break
                        t = _Task(path=path)
                    in_flight[backend.submit(t.kind, t.path)] = t
                if not in_flight or stop.requested:
                    break
                broken: list[_Task] = []
                for fut in backend.wait(list(in_flight), timeout=0.5):
                    t = in_flight.pop(fut)
                    try:
                        value = backend.outcome(fut)
                    except _WorkerDiedError as exc:
                        if isinstance(backend, _Local):
                            broken.append(t)
                        elif t.kind == "identify":
                            done_with(t, (None, None))  # the analysis will tell
                        else:
                            finish(t, crashed(t, str(exc).splitlines()[0]))
                        continue
                    except Exception as exc:  # an adapter bug must not stop the batch
                        log.exception("%s: worker failed", t.path)
                        if t.kind == "identify":
                            done_with(t, (None, None))
                        else:
                            finish(t, [error_result(t.path, StageError(f"{t.path}: {exc}"))])
                        continue
                    done_with(t, value)
                if broken and isinstance(backend, _Local):
                    # The pool is gone: all work in flight is suspect. Identify work is
                    # retried (then given up on: the analysis reports the file); each
                    # analysis runs alone in a fresh process, and the one that dies
                    # again is the culprit.
                    suspects = broken + list(in_flight.values())
                    in_flight.clear()
                    backend.restart()
                    for t in suspects:
                        if stop.requested:
                            break
                        if t.kind == "identify":
                            t.attempts += 1
                            if t.attempts >= 2:
                                done_with(t, (None, None))
                            else:
                                retry.append(t)
                            continue
                        try:
                            done_with(t, backend.isolate("analyze", t.path))
                        except _WorkerDiedError as exc:
                            finish(t, crashed(t, str(exc) or "terminated abruptly"))
                if progress is not None:
                    progress.update(progress_count[0], summary)
        except KeyboardInterrupt:
            stop.requested = True
        finally:
            summary.interrupted = stop.requested
            backend.close(kill=stop.requested or bool(in_flight))
            if progress is not None:
                progress.update(progress_count[0], summary, force=True)
                progress.close()

    summary.elapsed_s = time.perf_counter() - t0
    if out_dir is not None:
        finals = write_outputs(out_dir, parquet=options.parquet, report=options.report)
        summary.final_errors = sum(1 for r in finals if r.status is Status.ERROR)
    else:
        summary.final_errors = summary.errors
    return summary


def _check_picklable(options: BatchOptions) -> None:
    """Workers receive the parameters and the context by pickling: fail early and clearly."""
    import pickle

    for what, value in (("parameters", options.config), ("clinical context", options.context)):
        try:
            pickle.dumps(value)
        except Exception as exc:
            raise ConfigError(
                f"the {what} ({type(value).__name__}) cannot be sent to worker processes: "
                f"{exc}; use --workers 0 to analyse in this process"
            ) from exc


def _sop(t: _Task) -> str | None:
    return t.header.sop_instance_uid if t.header is not None else None


def _call_analyze_one(
    path: str,
    *,
    config: Config,
    context: Any,
    out_dir: str | None,
    overlays: str,
    dicom_dir: str | None,
    quiet: bool,
    in_worker: bool,
) -> list[dict[str, Any]]:
    if quiet:
        # Dask workers are not started by us (no initializer): quieten per-file warnings
        # here, as _worker_init does for local workers.
        logging.getLogger("calcimg").setLevel(logging.ERROR)
    if in_worker:
        _one_thread()
        steady_allocator()
    return analyze_one(path, config, context, out_dir, overlays, dicom_dir)


def final_results(out_dir: str | os.PathLike[str]) -> list[Result]:
    """The latest result per (source, frame) of a batch folder, sorted."""
    return latest_results(read_results(Path(out_dir) / RESULTS_FILE))
