"""Where the shared real datasets are: `$SPGNET_DATA_DIR` or `<repo>/../shared/data`.

Tests that need them are marked `shared_data` (those using the `camvid_root` or
`cityscapes_root` fixtures, by tests/conftest.py) and, when the data is missing, skip with
the reason, so the suite runs from a clean clone anywhere; in CI (`CI=true`) they fail
instead, so a CI machine without the data can never pass by skipping them.
"""

import os
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def data_missing(message: str):
    """Fails the test in CI, skips it with `message` elsewhere."""
    if running_in_ci():
        pytest.fail(f"{message} (CI=true: tests that need the shared data fail when it is missing)", pytrace=False)
    pytest.skip(f"{message}; set SPGNET_DATA_DIR to run this test")


def shared_data_dir() -> Path:
    override = os.environ.get("SPGNET_DATA_DIR")
    path = (Path(override) if override else REPOSITORY / ".." / "shared" / "data").resolve()
    if not path.is_dir():
        data_missing(f"Shared data folder not found: {path}")
    return path


def shared_dataset(name, marker):
    """`shared_data_dir()/name`, skipping (failing in CI) unless it holds `marker`."""
    root = shared_data_dir() / name
    if not (root / marker).exists():
        data_missing(f"{name} not found at {root} (expected {marker})")
    return root
