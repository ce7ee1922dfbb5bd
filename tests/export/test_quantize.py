"""Reduced-precision exports and the robustness of the served signatures.

- `spgnet export --format tflite --quantize int8` on a tiny model: calibration on a folder
  of images, the parity report against the float model and the mIoU of both on a folder
  with masks.
- A bfloat16 SavedModel: loads in TensorFlow's C API (TF Serving's loader) and agrees
  with the float Keras model; malformed requests (wrong rank, nested lists, the wrong
  dtype) get an InvalidArgument naming what was expected.
- The documented bounds of the export options (`--output-size`) and the option checks.
"""

import json
import os
import re
import subprocess
import types

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from spgnet_keras.export import MAX_OUTPUT_PIXELS, export_saved_model, open_runner
from spgnet_keras.export.serving import ENCODED_RANK_MESSAGE, TENSOR_RANK_MESSAGE
from tests.export.reference import QUANTIZED_CLASSES, encode, keras_classes, smooth_image
from tests.export.test_export_options import _cli
from tests.export.test_saved_model import _read_output, _start_c_compile, _write_array, _write_strings

NUM_CLASSES = QUANTIZED_CLASSES
SIZE = (64, 96)


@pytest.fixture(scope="module")
def model(int8_model):
    return int8_model


@pytest.fixture(scope="module")
def checkpoint(int8_checkpoint):
    return int8_checkpoint


def _write_folders(root, model):
    """Calibration images (two sizes: padded and resized to the export size) and a
    validation folder whose masks are the float model's own classes (255 on a border)."""
    calibration = root / "calibration"
    calibration.mkdir()
    for index in range(6):
        size = SIZE if index % 2 else (80, 120)
        Image.fromarray(smooth_image(*size, seed=100 + index)).save(calibration / f"{index:02d}.png")
    (root / "val" / "images").mkdir(parents=True)
    (root / "val" / "labels").mkdir()
    for index in range(2):
        image = smooth_image(*SIZE, seed=200 + index)
        mask = keras_classes(model, image[None])[0].astype("uint8")
        mask[:2] = 255
        Image.fromarray(image).save(root / "val" / "images" / f"{index}.png")
        Image.fromarray(mask).save(root / "val" / "labels" / f"{index}.png")
    return calibration, root / "val"


def test_int8_tflite_export_reports_agreement_and_miou(model, checkpoint, tmp_path, capsys):
    """The int8 file has int8 tensors, float32 input/output, runs on XNNPACK, and the command
    prints the calibration agreement and both mIoUs; the float model scores ~100% on masks
    made from its own classes, the int8 model no better."""
    calibration, validation = _write_folders(tmp_path, model)
    out = tmp_path / "model_int8.tflite"
    argv = [str(checkpoint), "--format", "tflite", "--out", str(out), "--input-size", "64x96", "--quantize", "int8",
            "--calibration", str(calibration), "--validation", str(validation)]
    assert _cli(argv) == 0
    printed = capsys.readouterr().out
    assert "calibrated on 6 images" in printed, printed
    agreement = float(re.search(r"same class on ([\d.]+)% of the pixels of 6 calibration images", printed).group(1))
    miou = re.search(r"mIoU on 2 validation images: float32 ([\d.]+), int8 ([\d.]+)", printed)
    float_miou, int8_miou = float(miou.group(1)), float(miou.group(2))
    assert agreement >= 90.0, printed
    assert float_miou > 99.0 and int8_miou <= float_miou + 1e-6, printed

    runner = open_runner(out)
    assert runner.delegate == "XNNPACK"
    details = runner.interpreter.get_tensor_details()
    assert sum(d["dtype"] == np.int8 for d in details) > 30  # weights and activations
    assert runner.interpreter.get_input_details()[0]["dtype"] == np.float32
    logits = runner(smooth_image(*SIZE, seed=1)[None].astype("float32"))
    assert logits.shape == (1, *SIZE, NUM_CLASSES) and logits.dtype == np.float32


@pytest.fixture(scope="module")
def bfloat16_export(model, tmp_path_factory):
    base = tmp_path_factory.mktemp("bf16")
    runner, compile_process = _start_c_compile(base)
    export_dir = export_saved_model(model, base / "spgnet" / "1", precision="bfloat16")
    image = smooth_image(70, 90, seed=5)
    yield types.SimpleNamespace(
        export_dir=export_dir, base=base, image=image, png=encode(image, "PNG"), runner=runner,
        compile=compile_process, expected=keras_classes(model, image[None]),
    )
    if compile_process.poll() is None:
        compile_process.kill()
        compile_process.wait()


def _run_c_api(export, requests):
    """Runs (label, signature, kind, writer) requests through TF_LoadSessionFromSavedModel."""
    from tests.export.test_saved_model import _signature_tensors

    _, errors = export.compile.communicate(timeout=300)
    assert export.compile.returncode == 0, errors[-3000:]
    tensors = _signature_tensors(export.export_dir)
    lines = []
    for label, signature, kind, write in requests:
        write(export.base / f"{label}.req")
        input_name, output_names = tensors[signature]
        lines.append(f"{input_name} {kind} {export.base / (label + '.req')} {output_names[0]} {export.base / label}")
    (export.base / "spec.txt").write_text("\n".join(lines) + "\n")
    result = subprocess.run([str(export.runner), str(export.export_dir), str(export.base / "spec.txt")],
                            capture_output=True, text=True, timeout=180,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    status = result.stdout.splitlines()
    assert status[0] == "LOADED", status
    return status[1:]


def test_bfloat16_saved_model_serves_from_the_c_api_like_the_float_model(bfloat16_export):
    """TF Serving's loader runs the bfloat16 export; its classes equal the float Keras
    model's on >= 99% of pixels; wrong ranks and dtypes get InvalidArgument (code 3) naming
    what was expected, and the session keeps serving."""
    export = bfloat16_export
    image = export.image
    status = _run_c_api(export, [
        ("png", "serving_default", "string", lambda path: _write_strings(path, [export.png])),
        ("float", "predict_images_float", "float", lambda path: _write_array(path, image[None].astype("float32"))),
        ("rank3", "predict_images", "uint8", lambda path: _write_array(path, image)),
        ("float_for_bytes", "serving_default", "float", lambda path: _write_array(path, np.zeros([1], "float32"))),
        ("uint8", "predict_images", "uint8", lambda path: _write_array(path, image[None])),
    ])
    assert status[0] == "OK" and status[1] == "OK" and status[4] == "OK", status
    assert status[2].startswith("ERROR 3 ") and TENSOR_RANK_MESSAGE in status[2], status[2]
    assert status[3].startswith("ERROR 3 ") and "string" in status[3], status[3]
    for label in ("png", "float", "uint8"):
        classes = _read_output(export.base / f"{label}.0")
        assert classes.shape == export.expected.shape
        assert np.mean(classes == export.expected) >= 0.99, label
    metadata = json.loads((export.export_dir / "assets.extra" / "spgnet_export.json").read_text())
    assert metadata["precision"] == "bfloat16" and metadata["batchnorm_folded"] is True


def test_malformed_requests_get_invalid_argument_naming_the_expected_input(bfloat16_export):
    served = tf.saved_model.load(str(bfloat16_export.export_dir))
    image, png = bfloat16_export.image, bfloat16_export.png
    requests = [
        ("one image without batch axis", "predict_images", tf.constant(image), TENSOR_RANK_MESSAGE),
        ("a batch nested one level too deep", "predict_images_float", tf.zeros([1, 1, 32, 32, 3]), TENSOR_RANK_MESSAGE),
        ("a flat list of pixels", "predict_images", tf.zeros([12], tf.uint8), TENSOR_RANK_MESSAGE),
        ("one PNG as a scalar", "serving_default", tf.constant(png), ENCODED_RANK_MESSAGE),
        ("nested list of PNGs", "serving_default", tf.constant([[png]]), ENCODED_RANK_MESSAGE),
        ("a float tensor where bytes are expected", "serving_default", tf.constant([1.0]), "expected to be a string"),
        ("uint8 pixels to the float signature", "predict_images_float", tf.constant(image[None]),
         "expected to be a float"),
        ("strings to the uint8 signature", "predict_images", tf.constant([png]), "expected to be a uint8"),
    ]
    for label, signature, images, message in requests:
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            served.signatures[signature](images=images)
        assert message in str(error.value), (label, str(error.value)[:2000])
    classes = served.signatures["serving_default"](images=tf.constant([png]))["classes"].numpy()
    assert np.mean(classes == bfloat16_export.expected) >= 0.99


def test_output_size_above_the_bound_is_refused_before_anything_is_written(model, tmp_path):
    side = int(MAX_OUTPUT_PIXELS**0.5)
    with pytest.raises(ValueError, match="more than the limit"):
        export_saved_model(model, tmp_path / "m" / "1", output_size=(side + 1, side))
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--out", "m/1", "--output-size", "5000x5000"], "--output-size 5000x5000 has 25000000 pixels"),
        (["--out", "m.tflite", "--format", "tflite", "--input-size", "64x96", "--quantize", "int8"], "--calibration"),
        (["--out", "m/1", "--quantize", "int8", "--calibration", "."], "--format tflite"),
        (["--out", "m.onnx", "--format", "onnx", "--input-size", "64x96", "--precision", "bfloat16"], "saved_model"),
        (["--out", "m/1", "--calibration", "."], "--calibration applies only to --quantize int8"),
        (["--out", "m.tflite", "--format", "tflite", "--input-size", "64x96", "--quantize", "int8",
          "--calibration", ".", "--calibration-images", "0"], "--calibration-images must be in"),
        (["--out", "m.tflite", "--format", "tflite", "--input-size", "64x96", "--quantize", "int8",
          "--calibration", "no_such_folder"], "no_such_folder"),
        (["--out", "m.tflite", "--format", "tflite", "--input-size", "64x96", "--min-agreement", "2"],
         "--min-agreement"),
    ],
)
def test_cli_option_errors_come_before_the_checkpoint_is_loaded(tmp_path, monkeypatch, argv, message):
    """The checkpoint does not exist: each error is found before it would be loaded."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=re.escape(message)) if "no_such" not in message else pytest.raises(
        FileNotFoundError, match=message
    ):
        _cli(["missing.keras", *argv])
    assert not (tmp_path / "m").exists()
