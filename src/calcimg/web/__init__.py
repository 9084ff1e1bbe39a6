"""The emergency-department worklist: a web tool over :mod:`calcimg.pipeline`.

:func:`create_app` builds the FastAPI application for one data directory; ``calcimg
serve`` runs it with uvicorn, optionally with a DICOM node and a watched folder.
"""

from __future__ import annotations

from calcimg.web.app import create_app
from calcimg.web.service import Service
from calcimg.web.store import ImageRow, Store

__all__ = ["ImageRow", "Service", "Store", "create_app"]
