"""Where the real test data lives: the shared DICOM corpus and pydicom-data files."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DICOM = REPO.parent / "shared" / "dicom"
SAMPLES = REPO / "sample_dicoms"


def pydicom_testfile(name: str) -> str:
    """Path of a pydicom / pydicom-data test file (installed offline by pydicom-data)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.fail(f"pydicom test file {name} is not installed (pip install pydicom-data)")
    return str(path)
