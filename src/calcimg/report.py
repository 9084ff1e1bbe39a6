"""Writers: the only place calcimg writes files.

:class:`ResultsWriter` appends one validated contract line per result to
``results.jsonl``, flushing and fsyncing each line so that an interrupted run keeps every
result already computed. The other outputs of a batch folder are derived from that file
and can be regenerated from it at any time (:func:`write_outputs`):

``images.csv``
    One row per image (per frame): status, error, flag, counts per pattern, top
    category, spacing and its source, identifiers, timings.
``findings.csv``
    One row per finding, flat columns (bbox, centroid, location, key descriptors).
``images.parquet``, ``findings.parquet``
    The same tables as Parquet (``--parquet``; needs pyarrow, the ``features`` extra).
``overlays/``
    PNG overlays (:func:`write_overlay`), drawn by the worker that analysed the image,
    since only it holds the pixels and the in-memory ``Result.label_mask``.
``report.html`` (and ``report-2.html``, ...)
    A self-contained page: summary, a sortable table of flagged images with thumbnails
    and per-image detail; paged at :data:`REPORT_PAGE_ROWS` rows per file.

Every file is written to a temporary name in the same folder and renamed into place, so
a reader (or a killed run) never sees half a file.
"""

from __future__ import annotations

import csv
import functools
import html
import io
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from calcimg.errors import ConfigError
from calcimg.result import TIMING_STAGES, Pattern, Result, Status, result_schema

__all__ = [
    "FINDINGS_FILE",
    "FINDING_DESCRIPTORS",
    "IMAGES_FILE",
    "OVERLAY_DIR",
    "REPORT_FILE",
    "REPORT_PAGE_ROWS",
    "RESULTS_FILE",
    "ResultsWriter",
    "finding_rows",
    "image_rows",
    "latest_results",
    "overlay_path",
    "read_results",
    "render_overlay",
    "write_outputs",
    "write_overlay",
    "write_report",
]

RESULTS_FILE = "results.jsonl"
IMAGES_FILE = "images.csv"
FINDINGS_FILE = "findings.csv"
REPORT_FILE = "report.html"
OVERLAY_DIR = "overlays"
REPORT_PAGE_ROWS = 200
"""Flagged images per report page: keeps each HTML file light whatever the folder size."""

FINDING_DESCRIPTORS: tuple[str, ...] = (
    "particle_diameter_mean_mm",
    "particle_diameter_max_mm",
    "particle_size_cv",
    "similar_sized",
    "extent_mm",
    "density_rel_cortex",
    "cnr",
    "linearity",
    "curvature_per_mm",
    "parallel_pair",
    "line_spacing_mm",
    "line_thickness_mm",
    "lucent_center",
    "ring_and_arc",
    "septa",
    "solidity",
    "eccentricity",
    "distribution",
)
"""The descriptor vocabulary flattened into ``findings.csv`` columns (``desc_<name>``)."""

# Outline colours per pattern (BGR for OpenCV) and their CSS twins for the report legend.
_PATTERN_BGR: dict[str, tuple[int, int, int]] = {
    "amorphous": (0, 165, 255),  # orange
    "finely_speckled": (255, 255, 0),  # cyan
    "globular_periarticular": (0, 255, 0),  # green
    "vascular": (0, 0, 255),  # red
    "chondral_line": (255, 0, 255),  # magenta
}
_CONFOUNDER_BGR = (255, 128, 0)  # blue: markers, metal and other non-calcific densities
_THUMB_MAX_PX = 256


# ----------------------------------------------------------------------- results.jsonl


class ResultsWriter:
    """Append results to ``DIR/results.jsonl`` (or a given stream), one line each.

    Parameters
    ----------
    out_dir : path-like or None
        Folder to write ``results.jsonl`` into (created if needed).
    stream : text stream, optional
        Write here instead (e.g. stdout) when ``out_dir`` is None.
    append : bool
        Keep existing lines (resuming) instead of starting a new file. A last line left
        incomplete by a killed run is cut off first, so the file stays one JSON object
        per line.
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
            if append:
                _cut_incomplete_line(self.path)
            self._fh: IO[str] = self.path.open("a" if append else "w", encoding="utf-8")
            self._own = True
        elif stream is not None:
            self._fh = stream
        else:
            raise ValueError("ResultsWriter needs out_dir or stream")

    def write(self, result: Result) -> None:
        """Validate and append one result line, flushed to disk."""
        self.write_many([result])

    def write_many(self, results: Sequence[Result]) -> None:
        """Validate and append several lines (the frames of one file) in one write."""
        lines = []
        for result in results:
            if self.validate:
                _validator().validate(result.to_dict())
            lines.append(result.to_json() + "\n")
        if not lines:
            return
        self._fh.write("".join(lines))
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


@functools.cache
def _validator() -> Any:
    """The result schema's validator, built once.

    ``jsonschema.validate`` re-checks the schema itself on every call (about 0.25 s
    here), which would make the writer, not the analysis, the bottleneck of a batch.
    """
    import jsonschema

    schema = result_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _cut_incomplete_line(path: Path) -> None:
    """Truncate ``path`` after its last newline (a kill can leave half a line)."""
    if not path.exists():
        return
    size = path.stat().st_size
    if size == 0:
        return
    with path.open("rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        # Scan back in blocks for the last newline.
        pos = size
        block = 65536
        keep = 0
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            pos = start
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())


def read_results(path: str | os.PathLike[str]) -> list[Result]:
    """Read every complete line of a ``results.jsonl`` (an incomplete last line is ignored).

    Raises
    ------
    ConfigError
        When a complete line is not a result of the contract (not a calcimg folder).
    """
    p = Path(path)
    if not p.exists():
        return []
    out: list[Result] = []
    with p.open("r", encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.endswith("\n"):
                break  # cut off by a kill; the writer repairs it on resume
            if not line.strip():
                continue
            try:
                out.append(Result.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(
                    f"{p}:{n}: not a calcimg.result/1 line ({exc}); expected the "
                    "results.jsonl that calcimg analyze writes"
                ) from exc
    return out


def latest_results(results: Iterable[Result]) -> list[Result]:
    """The last result per (source, frame), sorted by source then frame.

    A resumed or partly re-analysed folder can hold several lines for one image; the
    later line supersedes. Sorting makes every derived output independent of the order
    in which parallel workers finished.
    """
    by_key: dict[tuple[str, int], Result] = {}
    for r in results:
        by_key[(r.source, r.frame)] = r
    return [by_key[k] for k in sorted(by_key)]


# ------------------------------------------------------------------------------ tables


def overlay_path(result: Result) -> str:
    """The overlay PNG of a result, relative to the output folder (POSIX separators).

    Named by content hash and frame, so that duplicate files share one overlay.
    """
    key = result.input_hash[:16] if result.input_hash else _safe_name(result.source)
    return f"{OVERLAY_DIR}/{key}-f{result.frame}.png"


def _thumb_path(result: Result) -> str:
    return overlay_path(result).replace(f"{OVERLAY_DIR}/", f"{OVERLAY_DIR}/thumbs/", 1)


def _safe_name(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return keep[-80:] or "image"


def _top_category(categories: Sequence[Any]) -> tuple[str | None, float | None]:
    if not categories:
        return None, None
    top = categories[0]
    return str(top.name), float(top.score)


def image_rows(results: Sequence[Result], *, overlays_dir: Path | None = None) -> list[dict]:
    """One flat row per result (``images.csv``), in the given order.

    ``duplicate_of`` names the first source (in the given order) with the same content
    hash and frame, since duplicates share one analysis.
    """
    first_by_hash: dict[tuple[str, int], str] = {}
    rows: list[dict[str, Any]] = []
    for r in results:
        dup_of = None
        if r.input_hash:
            key = (r.input_hash, r.frame)
            dup_of = first_by_hash.setdefault(key, r.source)
            if dup_of == r.source:
                dup_of = None
        patterns = Counter(str(f.pattern) for f in r.findings)
        top, top_score = _top_category(r.categories)
        img = r.image
        overlay = overlay_path(r)
        has_overlay = overlays_dir is not None and (overlays_dir.parent / overlay).exists()
        row: dict[str, Any] = {
            "source": r.source,
            "frame": r.frame,
            "status": str(r.status),
            "error_type": r.error.type if r.error else None,
            "error_message": r.error.message if r.error else None,
            "flag": r.flag,
            "n_findings": len(r.findings),
            **{f"n_{p.value}": patterns.get(p.value, 0) for p in Pattern},
            "top_category": top,
            "top_category_score": top_score,
            "max_confidence": max((f.confidence for f in r.findings), default=None),
            "total_area_mm2": round(sum(f.area_mm2 for f in r.findings), 3) if r.findings else None,
            "n_confounders": len(r.confounders),
            "modality": r.modality,
            "body_part": r.body_part,
            "sop_instance_uid": r.sop_instance_uid,
            "study_instance_uid": r.study_instance_uid,
            "series_instance_uid": r.series_instance_uid,
            "rows": img.rows if img else None,
            "columns": img.columns if img else None,
            "pixel_spacing_row_mm": img.pixel_spacing_mm[0] if img else None,
            "pixel_spacing_col_mm": img.pixel_spacing_mm[1] if img else None,
            "spacing_source": img.spacing_source if img else None,
            "calibrated": img.calibrated if img else None,
            "duplicate_of": dup_of,
            "overlay": overlay if has_overlay else None,
            "calcimg_version": r.calcimg_version,
            "params_hash": r.params_hash,
            "input_hash": r.input_hash,
        }
        for stage in TIMING_STAGES:
            row[f"timing_{stage}_ms"] = r.timing_ms.get(stage) if r.timing_ms else None
        rows.append(row)
    return rows


def _csv_value(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else v


def finding_rows(results: Sequence[Result]) -> list[dict]:
    """One flat row per finding (``findings.csv``)."""
    rows: list[dict[str, Any]] = []
    for r in results:
        for f in r.findings:
            top, top_score = _top_category(f.categories)
            loc = f.location
            row: dict[str, Any] = {
                "source": r.source,
                "frame": r.frame,
                "sop_instance_uid": r.sop_instance_uid,
                "input_hash": r.input_hash,
                "finding_id": f.id,
                "pattern": str(f.pattern),
                "pattern_score": float(f.pattern_scores.get(str(f.pattern), 0.0)),
                "confidence": f.confidence,
                "area_mm2": f.area_mm2,
                "n_particles": f.n_particles,
                "bbox_row_min": f.bbox[0],
                "bbox_col_min": f.bbox[1],
                "bbox_row_max": f.bbox[2],
                "bbox_col_max": f.bbox[3],
                "centroid_row": f.centroid_rc[0],
                "centroid_col": f.centroid_rc[1],
                "top_category": top,
                "top_category_score": top_score,
                "nearest_joint": loc.nearest_joint,
                "distance_to_joint_mm": loc.distance_to_joint_mm,
                "intra_articular": loc.intra_articular,
                "distance_to_bone_mm": loc.distance_to_bone_mm,
                "body_part": r.body_part,
                "pixel_spacing_row_mm": r.image.pixel_spacing_mm[0] if r.image else None,
                "pixel_spacing_col_mm": r.image.pixel_spacing_mm[1] if r.image else None,
                "spacing_source": r.image.spacing_source if r.image else None,
            }
            for name in FINDING_DESCRIPTORS:
                row[f"desc_{name}"] = f.descriptors.get(name)
            rows.append(row)
    return rows


def _finding_columns() -> list[str]:
    base = [
        "source",
        "frame",
        "sop_instance_uid",
        "input_hash",
        "finding_id",
        "pattern",
        "pattern_score",
        "confidence",
        "area_mm2",
        "n_particles",
        "bbox_row_min",
        "bbox_col_min",
        "bbox_row_max",
        "bbox_col_max",
        "centroid_row",
        "centroid_col",
        "top_category",
        "top_category_score",
        "nearest_joint",
        "distance_to_joint_mm",
        "intra_articular",
        "distance_to_bone_mm",
        "body_part",
        "pixel_spacing_row_mm",
        "pixel_spacing_col_mm",
        "spacing_source",
    ]
    return base + [f"desc_{n}" for n in FINDING_DESCRIPTORS]


def _image_columns() -> list[str]:
    sample = image_rows([Result(source="", status=Status.SKIPPED)])
    return list(sample[0])


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: _csv_value(row.get(k)) for k in columns})
    _write_atomic(path, buf.getvalue().encode("utf-8"))


def _write_parquet(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if rows:
        table = pa.Table.from_pylist([{k: row.get(k) for k in columns} for row in rows])
    else:
        table = pa.table({k: pa.array([], type=pa.string()) for k in columns})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    _write_atomic(path, buf.getvalue().to_pybytes())


def check_parquet_available() -> None:
    """Raise a clear error when ``--parquet`` is asked for without pyarrow.

    Raises
    ------
    ConfigError
        pyarrow is not installed.
    """
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "--parquet needs pyarrow, which is not installed; install the features extra "
            "(pip install 'calcimg[features]') or leave out --parquet"
        ) from exc


def write_outputs(
    out_dir: str | os.PathLike[str],
    *,
    parquet: bool = False,
    report: bool = True,
) -> list[Result]:
    """Regenerate every table and the report of a batch folder from its results.jsonl.

    Parameters
    ----------
    out_dir : path-like
        A folder holding ``results.jsonl``.
    parquet : bool
        Also write ``images.parquet`` and ``findings.parquet``.
    report : bool
        Also write ``report.html`` (paged).

    Returns
    -------
    list of Result
        The latest result per (source, frame), sorted, as written to the tables.
    """
    d = Path(out_dir)
    results = latest_results(read_results(d / RESULTS_FILE))
    images = image_rows(results, overlays_dir=d / OVERLAY_DIR)
    findings = finding_rows(results)
    _write_csv(d / IMAGES_FILE, _image_columns(), images)
    _write_csv(d / FINDINGS_FILE, _finding_columns(), findings)
    if parquet:
        check_parquet_available()
        _write_parquet(d / "images.parquet", _image_columns(), images)
        _write_parquet(d / "findings.parquet", _finding_columns(), findings)
    if report:
        write_report(d, results, image_table=images)
    return results


# ---------------------------------------------------------------------------- overlays


def _window_to_uint8(pixels: np.ndarray, voi: tuple[float, float] | None) -> np.ndarray:
    """Canonical pixels to 8-bit display, with the VOI window (center, width) if any."""
    if voi is not None and voi[1] > 0:
        lo = voi[0] - voi[1] / 2.0
        hi = voi[0] + voi[1] / 2.0
    else:
        # No window in the file: 0.5-99.5 percentiles of a subsample, robust to labels.
        sample = pixels[:: max(1, pixels.shape[0] // 512), :: max(1, pixels.shape[1] // 512)]
        lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if hi <= lo:
        hi = lo + 1.0
    scaled = (pixels.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def render_overlay(
    pixels: np.ndarray,
    result: Result,
    *,
    voi_window: tuple[float, float] | None = None,
) -> np.ndarray:
    """Draw a result's findings and confounders on its film.

    Parameters
    ----------
    pixels : numpy.ndarray
        (rows, columns) canonical pixels (higher = more attenuation), as
        ``Radiograph.pixels``.
    result : Result
        With ``label_mask`` (in memory) for outlines; without it, findings are boxed.
    voi_window : tuple of float, optional
        (center, width) in canonical space (``Radiograph.voi_window``).

    Returns
    -------
    numpy.ndarray
        uint8 BGR image (rows + legend band, columns, 3): the film with findings
        outlined in their pattern's colour and labelled ``id pattern``, confounders
        (markers, metal) boxed in blue, and a legend band appended below the film.
    """
    import cv2

    gray = _window_to_uint8(pixels, voi_window)
    img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    size = max(img.shape[:2])
    thick = max(1, size // 500)
    font = max(0.4, size / 1500.0)
    mask = result.label_mask
    for conf in result.confounders:
        r0, c0, r1, c1 = conf.bbox
        cv2.rectangle(img, (c0, r0), (c1 - 1, r1 - 1), _CONFOUNDER_BGR, thick)
        cv2.putText(
            img,
            conf.kind,
            (c0, max(r0 - 4 * thick, 12)),
            cv2.FONT_HERSHEY_SIMPLEX,
            font * 0.8,
            _CONFOUNDER_BGR,
            thick,
            cv2.LINE_AA,
        )
    for f in result.findings:
        colour = _PATTERN_BGR.get(str(f.pattern), (0, 255, 255))
        r0, c0, r1, c1 = f.bbox
        drawn = False
        if mask is not None and mask.shape == pixels.shape:
            pad = 2
            rr0, cc0 = max(0, r0 - pad), max(0, c0 - pad)
            rr1, cc1 = min(mask.shape[0], r1 + pad), min(mask.shape[1], c1 + pad)
            sub = (mask[rr0:rr1, cc0:cc1] == f.id).astype(np.uint8)
            if sub.any():
                # Dilate so that one-pixel particles stay visible on a downscaled view.
                sub = cv2.dilate(sub, np.ones((2 * thick + 1, 2 * thick + 1), np.uint8))
                contours, _ = cv2.findContours(sub, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                cv2.drawContours(img, contours, -1, colour, thick, offset=(cc0, rr0))
                drawn = True
        if not drawn:
            cv2.rectangle(img, (c0, r0), (c1 - 1, r1 - 1), colour, thick)
        cv2.putText(
            img,
            f"{f.id} {f.pattern}",
            (c1 + 3 * thick, max(r0 + int(12 * font), 12)),
            cv2.FONT_HERSHEY_SIMPLEX,
            font,
            colour,
            thick,
            cv2.LINE_AA,
        )
    return _with_legend(img, result, font, thick)


def _with_legend(img: np.ndarray, result: Result, font: float, thick: int) -> np.ndarray:
    """Append a legend band below the film (never drawn over it)."""
    import cv2

    entries: list[tuple[str, tuple[int, int, int]]] = []
    for p in dict.fromkeys(str(f.pattern) for f in result.findings):
        entries.append((p, _PATTERN_BGR.get(p, (0, 255, 255))))
    if result.confounders:
        entries.append(("marker/metal (not calcification)", _CONFOUNDER_BGR))
    if not entries:
        return img
    scale = font * 0.8
    (_, text_h), _ = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    line_h = text_h * 2 + 4
    width = img.shape[1]
    # Lay entries out left to right, wrapping to a new line when the film is narrow.
    placed: list[tuple[int, int, str, tuple[int, int, int]]] = []
    x, line = 6, 0
    for text, colour in entries:
        (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        need = line_h + tw + 12
        if x > 6 and x + need > width:
            x, line = 6, line + 1
        placed.append((x, line, text, colour))
        x += need
    band = np.zeros((line_h * (line + 1) + 4, width, 3), np.uint8)
    for x, ln, text, colour in placed:
        y = line_h * (ln + 1) - line_h // 4
        cv2.rectangle(band, (x, y - text_h), (x + text_h, y), colour, -1)
        cv2.putText(
            band,
            text,
            (x + text_h + 6, y),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return np.vstack([img, band])


def write_overlay(
    out_dir: str | os.PathLike[str],
    result: Result,
    pixels: np.ndarray,
    *,
    voi_window: tuple[float, float] | None = None,
) -> Path:
    """Write the overlay PNG and its thumbnail for one result.

    Parameters
    ----------
    out_dir : path-like
        The batch output folder; files go to ``overlays/`` and ``overlays/thumbs/``.
    result : Result
        With its in-memory ``label_mask``.
    pixels : numpy.ndarray
        The film (``Radiograph.pixels``).
    voi_window : tuple of float, optional

    Returns
    -------
    Path
        The overlay PNG.
    """
    import cv2

    d = Path(out_dir)
    img = render_overlay(pixels, result, voi_window=voi_window)
    path = d / overlay_path(result)
    ok, png = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover - OpenCV failing to encode uint8 BGR
        raise OSError(f"{path}: PNG encoding failed")
    _write_atomic(path, png.tobytes())
    scale = _THUMB_MAX_PX / max(img.shape[:2])
    if scale < 1:
        thumb = cv2.resize(
            img,
            (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))),
            interpolation=cv2.INTER_AREA,
        )
    else:
        thumb = img
    ok, png = cv2.imencode(".png", thumb)
    _write_atomic(d / _thumb_path(result), png.tobytes())
    return path


# ------------------------------------------------------------------------------ report

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top;font-size:.9em}
th{background:#eee}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th.asc::after{content:" \\25B2"}table.sortable th.desc::after{content:" \\25BC"}
tr.img:hover{background:#f6f6ff;cursor:pointer}
tr.detail>td{background:#fafafa}
img.thumb{max-width:160px;max-height:160px;display:block}
img.full{max-width:100%;max-height:80vh}
.nav a,.nav span{margin-right:.6em}
.legend span{display:inline-block;width:1em;height:1em;margin:0 .3em 0 1em;vertical-align:middle}
.muted{color:#777}
"""

_JS = """
(function(){
  function key(td){var v=td.getAttribute('data-v');if(v===null)v=td.textContent;
    var n=parseFloat(v);return isNaN(n)||v===''?[1,v.toLowerCase()]:[0,n];}
  function cmp(a,b){if(a[0]!==b[0])return a[0]-b[0];return a[1]<b[1]?-1:a[1]>b[1]?1:0;}
  document.querySelectorAll('table.sortable').forEach(function(t){
    var ths=t.querySelectorAll('thead th');
    ths.forEach(function(th,i){th.addEventListener('click',function(){
      var asc=!th.classList.contains('asc');
      ths.forEach(function(h){h.classList.remove('asc','desc');});
      th.classList.add(asc?'asc':'desc');
      var tb=t.tBodies[0];var pairs=[];
      tb.querySelectorAll('tr.img').forEach(function(r){
        pairs.push([r,document.getElementById(r.getAttribute('data-detail'))]);});
      pairs.sort(function(a,b){var c=cmp(key(a[0].cells[i]),key(b[0].cells[i]));
        return asc?c:-c;});
      pairs.forEach(function(p){tb.appendChild(p[0]);if(p[1])tb.appendChild(p[1]);});
    });});
    t.querySelectorAll('tr.img').forEach(function(r){r.addEventListener('click',function(e){
      if(e.target.tagName==='A')return;
      var d=document.getElementById(r.getAttribute('data-detail'));
      if(d)d.hidden=!d.hidden;});});
  });
})();
"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _page_name(i: int) -> str:
    return REPORT_FILE if i == 1 else f"report-{i}.html"


def _detail_html(r: Result, row: Mapping[str, Any]) -> str:
    parts: list[str] = []
    if row.get("overlay"):
        parts.append(
            f'<p><a href="{_e(row["overlay"])}"><img class="full" loading="lazy" '
            f'src="{_e(row["overlay"])}" alt="overlay of {_e(r.source)}"></a></p>'
        )
    img = r.image
    if img is not None:
        parts.append(
            f"<p>{img.rows} x {img.columns} px, spacing {img.pixel_spacing_mm[0]:g} x "
            f"{img.pixel_spacing_mm[1]:g} mm ({_e(img.spacing_source)}"
            f"{'' if img.calibrated else ', uncalibrated'}); SOP Instance UID "
            f"{_e(r.sop_instance_uid)}</p>"
        )
    if r.findings:
        parts.append(
            "<table><thead><tr><th>id</th><th>pattern</th><th>confidence</th>"
            "<th>area mm²</th><th>particles</th><th>location</th><th>top category</th>"
            "</tr></thead><tbody>"
        )
        for f in r.findings:
            loc = f.location
            where = loc.nearest_joint or ""
            if loc.distance_to_joint_mm is not None:
                where += f" ({loc.distance_to_joint_mm:.1f} mm)"
            if loc.intra_articular:
                where += ", intra-articular"
            top, score = _top_category(f.categories)
            parts.append(
                f"<tr><td>{f.id}</td><td>{_e(f.pattern)}</td><td>{f.confidence:.2f}</td>"
                f"<td>{f.area_mm2:.1f}</td><td>{f.n_particles}</td><td>{_e(where)}</td>"
                f"<td>{_e(top)} {_fmt(score)}</td></tr>"
            )
        parts.append("</tbody></table>")
    if r.categories:
        parts.append("<p><b>Categories</b></p><ul>")
        for c in r.categories:
            ev = "; ".join(c.evidence)
            parts.append(f"<li>{_e(c.name)} {c.score:.2f}: {_e(ev)}</li>")
        parts.append("</ul>")
    if r.differential:
        parts.append(f"<p><b>Differential</b>: {_e(', '.join(r.differential))}</p>")
    if r.workup:
        parts.append(f"<p><b>Work-up</b>: {_e(', '.join(r.workup))}</p>")
    if r.confounders:
        kinds = Counter(c.kind for c in r.confounders)
        parts.append(
            "<p><b>Not calcification</b>: "
            + _e(", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())))
            + "</p>"
        )
    return "".join(parts)


def write_report(
    out_dir: str | os.PathLike[str],
    results: Sequence[Result],
    *,
    image_table: Sequence[Mapping[str, Any]] | None = None,
    page_rows: int = REPORT_PAGE_ROWS,
) -> list[Path]:
    """Write ``report.html`` (and ``report-2.html``, ...) for a batch folder.

    Each page is self-contained (inline CSS and JavaScript, no network); thumbnails and
    overlays are PNG files under ``overlays/`` referenced relatively. Page 1 carries the
    summary, every page up to ``page_rows`` flagged images (sortable by any column
    within the page; click a row for its detail), and the last page lists errors.

    Parameters
    ----------
    out_dir : path-like
    results : sequence of Result
        Latest result per image, sorted (:func:`latest_results`).
    image_table : sequence of mapping, optional
        Rows of :func:`image_rows` for ``results`` (computed when not given).
    page_rows : int
        Flagged images per page.

    Returns
    -------
    list of Path
        The pages written.
    """
    d = Path(out_dir)
    rows = (
        list(image_table)
        if image_table is not None
        else image_rows(results, overlays_dir=d / OVERLAY_DIR)
    )
    status = Counter(str(r.status) for r in results)
    flagged = [(r, row) for r, row in zip(results, rows, strict=True) if r.flag]
    n_pages = max(1, -(-len(flagged) // page_rows))
    versions = sorted({r.calcimg_version for r in results if r.calcimg_version})
    params = sorted({r.params_hash for r in results if r.params_hash})
    patterns = Counter(str(f.pattern) for r in results for f in r.findings)
    cats = Counter(str(r.categories[0].name) for r in results if r.categories)

    summary = [
        "<h2>Summary</h2><table>",
        f"<tr><th>images (frames)</th><td>{len(results)}</td></tr>",
        f"<tr><th>analysed</th><td>{status.get('ok', 0)}</td></tr>",
        f"<tr><th>flagged</th><td>{len(flagged)}</td></tr>",
        f"<tr><th>skipped</th><td>{status.get('skipped', 0)}</td></tr>",
        f"<tr><th>errors</th><td>{status.get('error', 0)}</td></tr>",
        f"<tr><th>findings</th><td>{sum(patterns.values())}</td></tr>",
        f"<tr><th>calcimg version</th><td>{_e(', '.join(versions))}</td></tr>",
        f"<tr><th>params hash</th><td>{_e(', '.join(params))}</td></tr>",
        "</table>",
    ]
    if patterns:
        summary.append(
            "<p>Findings by pattern: "
            + _e(", ".join(f"{k} {v}" for k, v in patterns.most_common()))
            + "</p>"
        )
    if cats:
        summary.append(
            "<p>Top category per image: "
            + _e(", ".join(f"{k} {v}" for k, v in cats.most_common()))
            + "</p>"
        )
    legend = "".join(
        f'<span style="background:rgb({c[2]},{c[1]},{c[0]})"></span>{_e(p)}'
        for p, c in _PATTERN_BGR.items()
    )
    c = _CONFOUNDER_BGR
    legend += f'<span style="background:rgb({c[2]},{c[1]},{c[0]})"></span>marker / metal'
    summary.append(f'<p class="legend">Overlay colours:{legend}</p>')

    errors = [(r, row) for r, row in zip(results, rows, strict=True) if r.status is Status.ERROR]
    err_html = ["<h2>Errors</h2>"]
    if errors:
        by_type = Counter(r.error.type if r.error else "?" for r, _ in errors)
        err_html.append(
            "<p>" + _e(", ".join(f"{k} {v}" for k, v in by_type.most_common())) + "</p>"
        )
        err_html.append(
            "<table><thead><tr><th>source</th><th>frame</th><th>error</th></tr></thead><tbody>"
        )
        for r, _ in errors[:page_rows]:
            msg = f"{r.error.type}: {r.error.message}" if r.error else ""
            err_html.append(f"<tr><td>{_e(r.source)}</td><td>{r.frame}</td><td>{_e(msg)}</td></tr>")
        err_html.append("</tbody></table>")
        if len(errors) > page_rows:
            err_html.append(
                f'<p class="muted">{len(errors) - page_rows} more in {IMAGES_FILE}.</p>'
            )
    else:
        err_html.append("<p>None.</p>")

    written: list[Path] = []
    for page in range(1, n_pages + 1):
        chunk = flagged[(page - 1) * page_rows : page * page_rows]
        nav = ['<p class="nav">Pages: ']
        for i in range(1, n_pages + 1):
            if i == page:
                nav.append(f"<span>{i}</span>")
            else:
                nav.append(f'<a href="{_page_name(i)}">{i}</a>')
        nav.append("</p>")
        nav_html = "".join(nav) if n_pages > 1 else ""
        body = [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>calcimg report{'' if page == 1 else f' (page {page})'}</title>",
            f"<style>{_CSS}</style></head><body>",
            "<h1>calcimg batch report</h1>",
        ]
        if page == 1:
            body.extend(summary)
        else:
            body.append(f'<p><a href="{REPORT_FILE}">Summary</a></p>')
        body.append(
            f"<h2>Flagged images ({len(flagged)})</h2>"
            + (
                f'<p class="muted">Showing {(page - 1) * page_rows + 1}-'
                f"{(page - 1) * page_rows + len(chunk)}; sorting applies within this page; "
                f"every image is in {IMAGES_FILE}.</p>"
                if flagged
                else ""
            )
        )
        body.append(nav_html)
        if chunk:
            body.append(
                '<table class="sortable" id="flagged"><thead><tr><th>overlay</th>'
                "<th>source</th><th>frame</th><th>findings</th><th>patterns</th>"
                "<th>max confidence</th><th>top category</th><th>score</th>"
                "<th>body part</th><th>spacing</th></tr></thead><tbody>"
            )
            for j, (r, row) in enumerate(chunk):
                did = f"d{(page - 1) * page_rows + j}"
                thumb = _thumb_path(r) if row.get("overlay") else None
                cell = (
                    f'<img class="thumb" loading="lazy" src="{_e(thumb)}" alt="thumbnail">'
                    if thumb
                    else '<span class="muted">none</span>'
                )
                pats = Counter(str(f.pattern) for f in r.findings)
                body.append(
                    f'<tr class="img" data-detail="{did}"><td data-v="">{cell}</td>'
                    f"<td>{_e(r.source)}</td><td>{r.frame}</td><td>{len(r.findings)}</td>"
                    f"<td>{_e(', '.join(f'{k} x{v}' for k, v in pats.most_common()))}</td>"
                    f'<td data-v="{_fmt(row["max_confidence"], 4)}">'
                    f"{_fmt(row['max_confidence'])}</td>"
                    f"<td>{_e(row['top_category'])}</td>"
                    f'<td data-v="{_fmt(row["top_category_score"], 4)}">'
                    f"{_fmt(row['top_category_score'])}</td>"
                    f"<td>{_e(r.body_part)}</td><td>{_e(row['spacing_source'])}</td></tr>"
                    f'<tr class="detail" id="{did}" hidden><td colspan="10">'
                    f"{_detail_html(r, row)}</td></tr>"
                )
            body.append("</tbody></table>")
        elif not flagged:
            body.append("<p>No flagged images.</p>")
        body.append(nav_html)
        if page == n_pages:
            body.extend(err_html)
        body.append(f"<script>{_JS}</script></body></html>")
        path = d / _page_name(page)
        _write_atomic(path, "\n".join(body).encode("utf-8"))
        written.append(path)
    # Pages left over from an earlier, larger run would link to stale content.
    k = n_pages + 1
    while (d / _page_name(k)).exists():
        (d / _page_name(k)).unlink()
        k += 1
    return written
