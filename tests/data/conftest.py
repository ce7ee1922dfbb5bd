"""Fixtures locating the shared real datasets (read-only; tests fail, not skip, if missing)."""

import os
from pathlib import Path

import pytest


def shared_data_dir() -> Path:
    """``$SPGNET_DATA_DIR`` or ``<repo>/../shared/data``; fails the test if it is missing."""
    override = os.environ.get("SPGNET_DATA_DIR")
    path = Path(override) if override else Path(__file__).resolve().parents[2] / "../shared/data"
    path = path.resolve()
    if not path.is_dir():
        pytest.fail(f"Shared data folder not found: {path} (set SPGNET_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    """Root of the half-resolution CamVid copy."""
    root = shared_data_dir() / "camvid"
    if not (root / "meta.json").is_file():
        pytest.fail(f"CamVid not found at {root} (expected meta.json, train/, val/)")
    return root


@pytest.fixture(scope="session")
def cityscapes_root() -> Path:
    """Root of the one-frame Cityscapes sample in the official layout."""
    root = shared_data_dir() / "cityscapes_sample"
    if not (root / "gtFine").is_dir():
        pytest.fail(f"Cityscapes sample not found at {root} (expected gtFine/, leftImg8bit/)")
    return root
