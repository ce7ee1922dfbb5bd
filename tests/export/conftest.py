"""Fixtures shared by the int8 export tests (TFLite and OpenVINO)."""

import pytest

from tests.export.reference import quantizable_model


@pytest.fixture(scope="module")
def int8_model():
    """The small SPGNet the int8 exports quantize (`reference.quantizable_model`)."""
    return quantizable_model(seed=21)


@pytest.fixture(scope="module")
def int8_checkpoint(int8_model, tmp_path_factory):
    """`int8_model` saved as a .keras file, for the CLI."""
    path = tmp_path_factory.mktemp("checkpoint") / "model.keras"
    int8_model.save(path)
    return path
