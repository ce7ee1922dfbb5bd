"""OpenVINO IR export (`--format openvino`, float32 and NNCF int8): parity with Keras on CamVid frames.

These tests need openvino and nncf (pyproject extra `test`); they are never skipped: a missing
package fails `test_requirements_installed` with the import error.
"""

import re

import numpy as np
import pytest
from PIL import Image

from spgnet_keras.data import list_images, load_image
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.export import check_parity, export_openvino, missing_requirements, open_runner
from spgnet_keras.export.portable import DEFAULT_MIN_AGREEMENT
from tests.export.reference import QUANTIZED_CLASSES, keras_classes
from tests.export.test_export_options import _cli

SIZE = (64, 96)


def camvid_frames(camvid_root, split, count, size=SIZE):
    """`count` CamVid frames of `split`, each the top-left `size` crop, float32 RGB 0-255."""
    paths = list_images([camvid_root / split / "images"])[:count]
    return np.stack([load_image(path)[: size[0], : size[1]] for path in paths]).astype("float32")


def test_requirements_installed():
    missing = missing_requirements("openvino")
    assert not missing, f"OpenVINO export tests need {missing}: install openvino and nncf (pyproject extra `test`)."


def test_float32_ir_matches_keras_on_camvid_frames(int8_model, camvid_root, tmp_path):
    model = int8_model
    frames = camvid_frames(camvid_root, "val", 2, size=(160, 224))
    path = export_openvino(model, tmp_path / "spgnet.xml", frames.shape)
    assert path.is_file() and path.with_suffix(".bin").stat().st_size > 1_000_000  # float32 weights beside it
    report = check_parity(model, path, frames)
    assert report.format == "openvino" and report.pixels == 2 * 160 * 224, str(report)
    assert report.agreement >= DEFAULT_MIN_AGREEMENT, str(report)
    assert report.max_abs_diff <= 1e-3 * max(report.max_abs_logit, 1.0), str(report)
    runner = open_runner(path, num_threads=1)
    assert runner.input_shape == (2, 160, 224, 3)
    classes = runner.classes(frames)  # the plugin's argmax (a TopK appended to the network)
    assert classes.dtype == np.int32 and classes.shape == (2, 160, 224)
    np.testing.assert_array_equal(classes, np.argmax(runner(frames), -1))
    with pytest.raises(InvalidInputError, match="must end in .xml"):
        export_openvino(model, tmp_path / "spgnet.onnx", frames.shape)
    with pytest.raises(InvalidInputError, match="calibration"):
        export_openvino(model, tmp_path / "q.xml", frames.shape, quantize="int8")


def test_int8_ir_from_the_cli_reports_agreement_and_miou_on_camvid(int8_model, int8_checkpoint, camvid_root, tmp_path,
                                                                   capsys):
    """`spgnet export --format openvino --quantize int8`: calibrated on CamVid train frames, int8
    convolutions in the graph, and the report of the int8 TFLite export (agreement, both mIoUs) on
    CamVid val frames whose masks are the float model's own classes."""
    validation = tmp_path / "val"
    (validation / "images").mkdir(parents=True)
    (validation / "labels").mkdir()
    frames = camvid_frames(camvid_root, "val", 2)
    for index, frame in enumerate(frames.astype("uint8")):
        mask = keras_classes(int8_model, frame[None])[0].astype("uint8")
        mask[:2] = 255
        Image.fromarray(frame).save(validation / "images" / f"{index}.png")
        Image.fromarray(mask).save(validation / "labels" / f"{index}.png")
    out = tmp_path / "spgnet_int8.xml"
    argv = [str(int8_checkpoint), "--format", "openvino", "--out", str(out), "--input-size", "64x96", "--quantize", "int8",
            "--calibration", str(camvid_root / "train" / "images"), "--calibration-images", "8",
            "--validation", str(validation)]
    assert _cli(argv) == 0
    printed = capsys.readouterr().out
    assert f"int8 openvino model written to {out}" in printed and "calibrated on 8 images" in printed, printed
    agreement = float(re.search(r"same class on ([\d.]+)% of the pixels of 8 calibration images", printed).group(1))
    miou = re.search(r"mIoU on 2 validation images: float32 ([\d.]+), int8 ([\d.]+)", printed)
    assert agreement >= 90.0, printed
    assert float(miou.group(1)) > 99.0 and float(miou.group(2)) <= float(miou.group(1)) + 1e-6, printed

    import openvino as ov

    graph = ov.Core().read_model(str(out))
    assert sum(node.get_type_name() == "FakeQuantize" for node in graph.get_ordered_ops()) > 20
    runner = open_runner(out)
    logits = runner(frames[:1])
    # int8 logits tie; of equal scores the plugin's class ids take the lowest, as np.argmax.
    np.testing.assert_array_equal(runner.classes(frames[:1]), np.argmax(logits, -1))
    assert logits.shape == (1, *SIZE, QUANTIZED_CLASSES) and logits.dtype == np.float32
    with pytest.raises(InvalidInputError, match="already exists; pass --overwrite"):
        _cli(argv)
    out.unlink()  # the weights alone are the user's too: not replaced without --overwrite
    with pytest.raises(InvalidInputError, match=r"spgnet_int8\.bin already exists; pass --overwrite"):
        _cli(argv)
