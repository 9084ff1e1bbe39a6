"""Shared fixtures: the real DICOM corpus beside the repository and pydicom-data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DICOM = REPO.parent / "shared" / "dicom"
SAMPLES = REPO / "sample_dicoms"


@pytest.fixture(scope="session")
def shared_dicom() -> Path:
    """``../shared/dicom``: real radiographs, broken files and non-image objects."""
    if not SHARED_DICOM.is_dir():
        pytest.fail(f"the shared DICOM corpus is missing: expected {SHARED_DICOM}")
    return SHARED_DICOM


def pydicom_testfile(name: str) -> str:
    """Path of a pydicom / pydicom-data test file (installed offline by pydicom-data)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.fail(f"pydicom test file {name} is not installed (pip install pydicom-data)")
    return str(path)
