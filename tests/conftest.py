"""Shared fixtures: paths to the real third-party DICOM corpus beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of real third-party DICOM files (../shared/realdata); skip when absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real DICOM corpus not found at {REALDATA} (it lives beside the repository)")
    return REALDATA
