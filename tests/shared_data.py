"""Where the shared real datasets are: `$SPGNET_DATA_DIR` or `<repo>/../shared/data`.

Tests that need them fail (never skip) when they are missing.
"""

import os
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    override = os.environ.get("SPGNET_DATA_DIR")
    path = (Path(override) if override else REPOSITORY / ".." / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.fail(f"Shared data folder not found: {path} (set SPGNET_DATA_DIR)", pytrace=False)
    return path


def shared_dataset(name, marker):
    """`shared_data_dir()/name`, failing unless it holds `marker`."""
    root = shared_data_dir() / name
    if not (root / marker).exists():
        pytest.fail(f"{name} not found at {root} (expected {marker})", pytrace=False)
    return root
