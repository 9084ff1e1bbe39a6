"""Shared fixtures: the real DICOM corpus beside the repository and pydicom-data."""

from __future__ import annotations

from pathlib import Path

import pytest

from realdata import SHARED_DICOM


@pytest.fixture(scope="session")
def shared_dicom() -> Path:
    """``../shared/dicom``: real radiographs, broken files and non-image objects."""
    if not SHARED_DICOM.is_dir():
        pytest.fail(f"the shared DICOM corpus is missing: expected {SHARED_DICOM}")
    return SHARED_DICOM
