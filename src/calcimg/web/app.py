"""The FastAPI application: worklist and image pages, uploads, and the JSON API.

Pages are rendered on the server with Jinja2; a little JavaScript refreshes the worklist,
uploads dropped files, and drives window/level and zoom on the image page. Every file
the app reads or writes is named by a generated id checked against
:data:`~calcimg.web.store.ID_PATTERN`; client-supplied names are only ever displayed.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from calcimg import __version__
from calcimg.config import Config
from calcimg.errors import InputError
from calcimg.web.service import Service
from calcimg.web.store import ImageRow, is_valid_id

__all__ = ["DEFAULT_MAX_UPLOAD_MB", "MAX_FILES_PER_UPLOAD", "TOKEN_COOKIE", "create_app"]

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_MB = 256
"""Largest accepted file: a 43 x 43 cm flat panel at 0.1 mm, 16-bit, uncompressed, is
about 37 MB; 256 MB leaves room for multi-frame objects."""
MAX_FILES_PER_UPLOAD = 50
TOKEN_COOKIE = "calcimg_token"
_PUBLIC_PATHS = ("/login", "/static/")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _package_dir(name: str) -> Path:
    return Path(str(resources.files("calcimg.web").joinpath(name)))


def display_name(name: str | None) -> str:
    """A client-supplied file name reduced to something safe to show (never a path)."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _CONTROL.sub("", base).strip()
    return base[:200] or "unnamed"


def format_number(value: Any) -> str:
    """Numbers for people: 3 significant digits, integers as they are, None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def create_app(
    data_dir: str | os.PathLike[str],
    *,
    token: str | None = None,
    config: Config | None = None,
    service: Service | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    refresh_s: float = 5.0,
) -> FastAPI:
    """Build the web application for one data directory.

    Parameters
    ----------
    data_dir : path-like
        Where received files, results, renderings and the database are kept.
    token : str, optional
        When given, every page and API call needs it: ``Authorization: Bearer TOKEN``,
        ``X-Calcimg-Token: TOKEN``, or the cookie set by the login form.
    config : Config, optional
        Analysis parameters.
    service : Service, optional
        An existing service (shared with the DICOM node); made from ``data_dir`` if None.
    max_upload_mb : float
        Largest accepted file.
    refresh_s : float
        Worklist auto-refresh period.

    Returns
    -------
    fastapi.FastAPI
    """
    svc = service or Service(data_dir, config=config)
    svc.start()
    max_bytes = int(max_upload_mb * 1024 * 1024)
    app = FastAPI(
        title="calcimg worklist",
        version=__version__,
        description="Soft-tissue calcification flags for radiographs: worklist and results.",
    )
    app.state.service = svc
    templates = Jinja2Templates(directory=str(_package_dir("templates")))
    templates.env.globals.update(version=__version__, auth=token is not None)
    templates.env.filters["num"] = format_number
    templates.env.globals["has_thumb"] = lambda image_id: svc.paths.thumb(image_id).is_file()
    app.mount("/static", StaticFiles(directory=str(_package_dir("static"))), name="static")

    # ------------------------------------------------------------------ security

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if token is not None and not path.startswith(_PUBLIC_PATHS):
            given = _request_token(request)
            if given is None or not hmac.compare_digest(given.encode(), token.encode()):
                if path.startswith("/api/") or path == "/openapi.json":
                    return JSONResponse(
                        {"detail": "authentication required: send the token"},
                        status_code=401,
                        headers={"WWW-Authenticate": "Bearer"},
                    )
                return RedirectResponse(f"/login?next={quote(path)}", status_code=303)
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_bytes * MAX_FILES_PER_UPLOAD:
            return _error(request, templates, 413, [f"request of {length} bytes is too large"])
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/") -> Response:
        return templates.TemplateResponse(
            request, "login.html", {"next": _safe_next(next), "failed": False}
        )

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    def login(
        request: Request,
        token_field: Annotated[str, Form(alias="token")] = "",
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        if token is None or hmac.compare_digest(token_field.encode(), token.encode()):
            resp = RedirectResponse(_safe_next(next), status_code=303)
            if token is not None:
                resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
            return resp
        return templates.TemplateResponse(
            request, "login.html", {"next": _safe_next(next), "failed": True}, status_code=401
        )

    # --------------------------------------------------------------------- pages

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def worklist(request: Request, flagged: bool = False) -> Response:
        rows = svc.store.list(flagged=True if flagged else None)
        return templates.TemplateResponse(
            request,
            "worklist.html",
            {
                "rows": rows,
                "flagged": flagged,
                "refresh_ms": int(refresh_s * 1000),
                "max_upload_mb": max_upload_mb,
            },
        )

    @app.get("/image/{image_id}", response_class=HTMLResponse, include_in_schema=False)
    def image_page(request: Request, image_id: str) -> Response:
        row = _row_or_404(svc, image_id)
        return templates.TemplateResponse(
            request,
            "image.html",
            {
                "row": row,
                "result": svc.result_dict(image_id),
                "meta": svc.meta(image_id),
            },
        )

    @app.get("/image/{image_id}/film.png", include_in_schema=False)
    def film(
        image_id: str,
        wc: Annotated[float | None, Query(ge=-1.0, le=2.0)] = None,
        ww: Annotated[float | None, Query(gt=0.0, le=4.0)] = None,
    ) -> Response:
        _row_or_404(svc, image_id)
        png = svc.film_png(image_id, wc, ww)
        if png is None:
            raise HTTPException(404, "no rendering for this image (not analysed, or unreadable)")
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})

    @app.get("/image/{image_id}/thumb.png", include_in_schema=False)
    def thumb(image_id: str) -> Response:
        _row_or_404(svc, image_id)
        path = svc.paths.thumb(image_id)
        if not path.is_file():
            raise HTTPException(404, "no thumbnail yet")
        return FileResponse(path, media_type="image/png")

    @app.get("/image/{image_id}/dicom/{name}", include_in_schema=False)
    def dicom_result(image_id: str, name: str) -> Response:
        row = _row_or_404(svc, image_id)
        names = row.to_dict()["dicom_results"]
        if name not in names:  # only names the worker wrote; never a client path
            raise HTTPException(404, "no such DICOM result")
        return FileResponse(
            svc.paths.dicom_dir(image_id) / name, media_type="application/dicom", filename=name
        )

    @app.post("/image/{image_id}/ack", include_in_schema=False)
    def ack_form(image_id: str) -> Response:
        _row_or_404(svc, image_id)
        svc.store.acknowledge(image_id)
        return RedirectResponse(f"/image/{image_id}", status_code=303)

    @app.post("/upload", include_in_schema=False)
    async def upload(request: Request, files: Annotated[list[UploadFile], File()]) -> Response:
        accepted, errors = await _receive_all(svc, files, max_bytes, origin="upload")
        wants_json = "application/json" in request.headers.get("accept", "")
        status = 400 if errors else 200
        if wants_json:
            return JSONResponse(
                {"accepted": [r.to_dict() for r in accepted], "errors": errors},
                status_code=status,
            )
        if errors:
            return _error(request, templates, 400, errors, accepted=accepted)
        return RedirectResponse("/", status_code=303)

    # ----------------------------------------------------------------------- API

    @app.get("/api/results", tags=["results"])
    def api_results(
        flagged: bool | None = None, limit: Annotated[int, Query(ge=1, le=5000)] = 200
    ) -> list[dict[str, Any]]:
        """Worklist entries, newest first (``flagged=true`` for flagged images only)."""
        return [_summary(r, svc) for r in svc.store.list(flagged=flagged, limit=limit)]

    @app.get("/api/results/{image_id}", tags=["results"])
    def api_result(image_id: str) -> dict[str, Any]:
        """One entry with its full result (``calcimg.result/1``) once analysed."""
        row = _row_or_404(svc, image_id)
        d = _summary(row, svc)
        d["result"] = svc.result_dict(image_id)
        meta = svc.meta(image_id)
        d["outlines"] = None if meta is None else meta["outlines"]
        return d

    @app.post("/api/results/{image_id}/ack", tags=["results"])
    def api_ack(image_id: str) -> dict[str, Any]:
        """Mark a flag as seen (kept in the database; the first time is kept)."""
        _row_or_404(svc, image_id)
        when = svc.store.acknowledge(image_id)
        return {"id": image_id, "acknowledged": True, "acknowledged_at": when}

    @app.post("/api/analyze", tags=["results"], status_code=202)
    async def api_analyze(
        file: Annotated[UploadFile, File()],
        wait: Annotated[float, Query(ge=0.0, le=120.0)] = 0.0,
    ) -> JSONResponse:
        """Receive one file (DICOM, PNG or TIFF) and queue it; ``wait`` seconds for the
        result (the answer is 200 with the result when it came in time, else 202)."""
        accepted, errors = await _receive_all(svc, [file], max_bytes, origin="api")
        if errors:
            return JSONResponse({"detail": errors[0]}, status_code=400)
        row = accepted[0]
        if wait > 0:
            import anyio.to_thread

            done = await anyio.to_thread.run_sync(svc.wait, row.id, wait)
            if done is not None and done.state == "done":
                d = _summary(done, svc)
                d["result"] = svc.result_dict(row.id)
                return JSONResponse(d, status_code=200)
        return JSONResponse(_summary(row, svc), status_code=202)

    return app


def _summary(row: ImageRow, svc: Service) -> dict[str, Any]:
    d = row.to_dict()
    del d["file_name"]  # internal
    d["url"] = f"/image/{row.id}"
    has_thumb = row.state == "done" and svc.paths.thumb(row.id).is_file()
    d["thumbnail_url"] = f"/image/{row.id}/thumb.png" if has_thumb else None
    return d


def _row_or_404(svc: Service, image_id: str) -> ImageRow:
    if not is_valid_id(image_id):
        raise HTTPException(404, "no such image")
    row = svc.store.get(image_id)
    if row is None:
        raise HTTPException(404, "no such image")
    return row


def _request_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-calcimg-token") or request.cookies.get(TOKEN_COOKIE)


def _safe_next(target: str) -> str:
    # only local paths: "//host" or "/\\host" would be an open redirect
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


async def _receive_all(
    svc: Service, files: list[UploadFile], max_bytes: int, *, origin: str
) -> tuple[list[ImageRow], list[str]]:
    accepted: list[ImageRow] = []
    errors: list[str] = []
    if len(files) > MAX_FILES_PER_UPLOAD:
        return [], [f"{len(files)} files in one upload; at most {MAX_FILES_PER_UPLOAD}"]
    for up in files:
        name = display_name(up.filename)
        chunks: list[bytes] = []
        size = 0
        while chunk := await up.read(1 << 20):
            size += len(chunk)
            if size > max_bytes:
                break
            chunks.append(chunk)
        await up.close()
        if size > max_bytes:
            errors.append(f"{name}: larger than the {max_bytes // (1024 * 1024)} MB limit")
            continue
        if size == 0:
            errors.append(f"{name}: empty file")
            continue
        try:
            accepted.append(svc.receive(b"".join(chunks), original_name=name, origin=origin))
        except InputError as exc:
            errors.append(str(exc))
    return accepted, errors


def _error(
    request: Request,
    templates: Jinja2Templates,
    status: int,
    errors: list[str],
    *,
    accepted: list[ImageRow] | None = None,
) -> Response:
    return templates.TemplateResponse(
        request,
        "error.html",
        {"errors": errors, "accepted": accepted or [], "status": status},
        status_code=status,
    )
