"""Fixtures of the example tests: the Cityscapes sample and a kernel on this interpreter."""

import json
import os
import sys
from pathlib import Path

import pytest

from tests.examples.example_helpers import shared_data_dir


@pytest.fixture(scope="session")
def cityscapes_root() -> Path:
    root = shared_data_dir() / "cityscapes_sample"
    if not (root / "gtFine").is_dir() or not (root / "leftImg8bit").is_dir():
        pytest.fail(f"Cityscapes sample not found at {root} (expected gtFine/, leftImg8bit/)")
    return root


@pytest.fixture
def python3_kernel(tmp_path, monkeypatch):
    """A "python3" kernelspec that starts ipykernel with *this* interpreter (sys.executable),
    found first through JUPYTER_PATH, so notebooks run in the test's environment."""
    kernel_dir = tmp_path / "jupyter" / "kernels" / "python3"
    kernel_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (tests)",
        "language": "python",
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(
        p for p in (str(tmp_path / "jupyter"), os.environ.get("JUPYTER_PATH")) if p))
    return "python3"
