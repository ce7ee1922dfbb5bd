"""Bad inputs of the reliability catalogue (docs/reliability.md) not covered elsewhere."""

import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from spgnet_keras import SPGNet
from spgnet_keras.data import load_image
from spgnet_keras.inference import load_model
from spgnet_keras.models.checkpoints import load_model_weights
from tests.helpers import assert_close_at_scale


def huge_png_header(path, width=50000, height=50000):
    """A PNG whose IHDR declares width x height (the pixel data is a tiny stub)."""
    Image.new("RGB", (4, 4)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]  # type + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def test_huge_declared_image_is_rejected_before_decoding(tmp_path):
    path = huge_png_header(tmp_path / "bomb.png")
    with pytest.raises(ValueError, match=r"bomb.png declares more pixels than the limit of 16777216"):
        load_image(path)
    medium = huge_png_header(tmp_path / "medium.png", 8000, 8000)  # under PIL's limit, over ours
    with pytest.raises(ValueError, match=r"declares 8000x8000 = 64000000 pixels, more than the limit"):
        load_image(medium)


def test_predict_command_rejects_huge_image_with_exit_code_2(tmp_path):
    model = SPGNet(3, backbones=("resnet18",), decoder_channels=8)
    model.save(tmp_path / "m.keras")
    path = huge_png_header(tmp_path / "bomb.png")
    result = subprocess.run(
        [sys.executable, "-m", "spgnet_keras.cli", "predict", str(path), "--model", str(tmp_path / "m.keras"),
         "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2 and "more pixels than the limit" in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("content", [b"not a zip at all", None])
def test_truncated_or_foreign_keras_file(tmp_path, content):
    path = tmp_path / "model.keras"
    if content is None:  # a real model file cut in half
        SPGNet(3, backbones=("resnet18",), decoder_channels=8).save(path)
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"model.keras: it is damaged or not a .keras archive \(no complete zip"):
        load_model(path)


def test_checkpoint_of_another_architecture_names_variable_and_shapes(tmp_path):
    SPGNet(5, backbones=("resnet18",), decoder_channels=8).save(tmp_path / "five.keras")
    model = SPGNet(3, backbones=("resnet18",), decoder_channels=8)
    with pytest.raises(ValueError, match=r"'stage1_classifier/kernel' has shape \(1, 1, 8, 5\) in the checkpoint "
                                         r"and \(1, 1, 8, 3\) in the model"):
        load_model_weights(model, tmp_path / "five.keras")
    SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=8).save(tmp_path / "two.keras")
    with pytest.raises(ValueError, match="two.keras has no variable .*another architecture"):
        load_model_weights(model, tmp_path / "two.keras")


def test_matching_checkpoint_loads_exactly(tmp_path):
    source = SPGNet(3, backbones=("resnet18",), decoder_channels=8)
    source.save(tmp_path / "m.keras")
    model = load_model_weights(SPGNet(3, backbones=("resnet18",), decoder_channels=8), tmp_path / "m.keras")
    x = np.random.default_rng(0).uniform(0, 255, size=(1, 64, 64, 3)).astype("float32")  # RGB 0-255
    assert_close_at_scale(model(x)["prediction"], source(x)["prediction"], relative=1e-6)


def test_output_folder_under_a_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "spgnet_keras.cli", "profile", "--rows", "R18 x1", "--height", "64", "--width", "64",
         "--out", str(blocker / "table.md")], capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2 and "file.txt" in result.stderr, result.stderr[-2000:]
