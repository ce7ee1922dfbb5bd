"""ONNX and TFLite (LiteRT) export: argmax parity with Keras on >= 99.9% of pixels.

These tests need tf2onnx, onnxruntime and ai-edge-litert. They are never skipped: a
missing or broken package fails `test_requirements_installed` with the import error.
"""

import keras
import numpy as np
import pytest

from spgnet_keras import SPGNet
from spgnet_keras.export.portable import (
    DEFAULT_MIN_AGREEMENT,
    ParityError,
    check_parity,
    export_onnx,
    export_tflite,
    missing_requirements,
    open_runner,
)
from tests.export.reference import smooth_image

SHAPE = (2, 64, 96, 3)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(11)
    return SPGNet(6, backbones=("resnet18",), decoder_channels=16)


@pytest.fixture(scope="module")
def images():
    """Two natural-ish images, float32 RGB 0-255 (what the exported network takes)."""
    return np.stack([smooth_image(64, 96, seed=s) for s in (1, 2)]).astype("float32")


@pytest.fixture(scope="module")
def exported_file(model, tmp_path_factory):
    """kind -> the exported file, written once per module."""
    folder = tmp_path_factory.mktemp("portable")
    files = {}

    def get(kind):
        assert not missing_requirements(kind), f"missing packages for {kind}: {missing_requirements(kind)}"
        if kind not in files:
            export = export_onnx if kind == "onnx" else export_tflite
            files[kind] = export(model, folder / f"spgnet.{kind}", SHAPE)
        return files[kind]

    return get


@pytest.mark.parametrize("kind", ["onnx", "tflite"])
def test_requirements_installed(kind):
    missing = missing_requirements(kind)
    assert not missing, (
        f"{kind} export tests need {missing}: install tf2onnx, onnxruntime and ai-edge-litert "
        "(pyproject extra `test`)."
    )


@pytest.mark.parametrize("kind", ["onnx", "tflite"])
def test_parity_with_keras(model, images, exported_file, kind):
    path = exported_file(kind)
    assert path.is_file() and path.stat().st_size > 100_000
    report = check_parity(model, path, images)
    print(report)
    assert report.format == kind and report.pixels == 2 * 64 * 96
    assert report.agreement >= DEFAULT_MIN_AGREEMENT, str(report)
    assert report.max_abs_diff <= 1e-3 * max(report.max_abs_logit, 1.0), str(report)
    # Uniform random 0-255 inputs (the default) too.
    assert check_parity(model, path).agreement >= DEFAULT_MIN_AGREEMENT
    # A wrong-shaped batch is refused with a readable message.
    with pytest.raises(ValueError, match="takes"):
        check_parity(model, path, images[:1])
    runner = open_runner(path)
    classes = runner.classes(images)
    assert classes.dtype == np.int32 and classes.shape == images.shape[:3]
    np.testing.assert_array_equal(classes, np.argmax(runner(images), -1))


def test_parity_error_when_models_differ(images, exported_file):
    """check_parity fails loudly when the file is not the model's (another seed)."""
    path = exported_file("onnx")
    keras.utils.set_random_seed(12)
    other = SPGNet(6, backbones=("resnet18",), decoder_channels=16)
    with pytest.raises(ParityError, match="below the required"):
        check_parity(other, path, images)


@pytest.mark.parametrize(
    "function, name, shape, message",
    [
        (export_onnx, "m.onnx", (60, 96), "multiples of 32"),
        (export_onnx, "m.onnx", (64, 96, 3), r"\(height, width\)"),
        (export_onnx, "m.model", (64, 96), r"\.onnx"),
        (export_tflite, "m.onnx", (64, 96), r"\.tflite"),
        (export_tflite, "m.tflite", (0, 96), "positive"),
    ],
)
def test_bad_arguments(model, tmp_path, function, name, shape, message):
    with pytest.raises(ValueError, match=message):
        function(model, tmp_path / name, shape)


def test_unknown_output_rejected(model, tmp_path):
    with pytest.raises(ValueError, match="`output` must be one of"):
        export_onnx(model, tmp_path / "m.onnx", (64, 96), output="stage1")


@pytest.mark.parametrize("function, name", [(export_onnx, "m.onnx"), (export_tflite, "m.tflite")])
def test_model_taking_normalised_input_refused(tmp_path, function, name):
    """The exported network takes RGB 0-255: a model built with include_preprocessing=False
    (normalised input) is refused with the way to convert it, and nothing is written."""
    raw = SPGNet(3, backbones=("resnet18",), decoder_channels=8, include_preprocessing=False)
    with pytest.raises(ValueError, match="with_preprocessing"):
        function(raw, tmp_path / name, (64, 96))
    assert not (tmp_path / name).exists()
