"""Shared by the example tests: where the repository, examples and shared data are."""

import os
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLES = REPOSITORY / "examples"


def shared_data_dir() -> Path:
    """``$SPGNET_DATA_DIR`` or ``<repo>/../shared/data``; fails the test if it is missing."""
    override = os.environ.get("SPGNET_DATA_DIR")
    path = Path(override) if override else REPOSITORY / ".." / "shared" / "data"
    path = path.resolve()
    if not path.is_dir():
        pytest.fail(f"Shared data folder not found: {path} (set SPGNET_DATA_DIR)")
    return path


def example_environment(tmp_path, **extra):
    """os.environ for a child process: the repository importable, quiet TF, outputs in tmp."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPOSITORY), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["SPGNET_DATA_DIR"] = str(shared_data_dir())
    env["MPLBACKEND"] = "Agg"
    env.update({key: str(value) for key, value in extra.items()})
    return env
