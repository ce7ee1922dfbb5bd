"""Rows 117+ of docs/reliability.md: values that cannot train (learning rate, one class, a
YAML key given twice), size limits checked before allocation (spgnet_keras.constants), and
the CLI's one-line errors for a foreign `.keras` file, a non-UTF-8 file name and stage
attention on a one-stage model, with TensorFlow's start-up lines kept off standard error.

CLI cases run `spgnet_keras.cli.main` in-process; one runs the installed `spgnet` script.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from PIL import Image

from spgnet_keras import SPGNet
from spgnet_keras.cli import main
from spgnet_keras.config import ExperimentConfig, apply_overrides, load_config, load_yaml
from spgnet_keras.constants import (
    MAX_DECODER_CHANNELS,
    MAX_IMAGE_PIXELS,
    MAX_IMAGE_SIDE,
    MAX_INFERENCE_BATCH,
    MAX_SCALE,
    MAX_WINDOW_SIDE,
    MAX_WINDOWS_PER_IMAGE,
)
from spgnet_keras.data import dataset_spec
from spgnet_keras.data.spec import DatasetSpec
from spgnet_keras.evaluation import evaluate
from spgnet_keras.inference import check_workload, predict_logits


def one_line_error(capsys, command, *argv):
    """The single stderr line of `spgnet COMMAND ARGV` run in-process (asserting exit code 2)."""
    code = main([command, *(str(a) for a in argv)])
    lines = capsys.readouterr().err.splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"spgnet {command}: error: "), lines
    return lines[0]


# ---------------------------------------------------------------- values that cannot train


@pytest.mark.parametrize(
    "assignment, fragment",
    [
        ("optimizer.learning_rate=0", "optimizer.learning_rate must be a positive number, got 0.0"),
        ("optimizer.learning_rate=-0.01", "optimizer.learning_rate must be a positive number, got -0.01"),
        ("optimizer.learning_rate=.nan", "optimizer.learning_rate must be a positive number, got nan"),
        ("optimizer.momentum=1.0", "optimizer.momentum must be in [0, 1), got 1.0"),
        ("optimizer.weight_decay=-0.0001", "optimizer.weight_decay must be >= 0, got -0.0001"),
        ("data.num_classes=1", "`data.num_classes` must be at least 2, got 1: with one class"),
    ],
)
def test_values_that_cannot_train_fail_before_anything_is_written(tmp_path, capsys, assignment, fragment):
    config = tmp_path / "c.yaml"
    config.write_text(f"run: {{out_dir: {tmp_path / 'run'}}}\n")
    line = one_line_error(capsys, "train", "--config", config, "--set", assignment)
    assert fragment in line
    assert not (tmp_path / "run").exists()


def test_one_class_is_refused_by_the_model_and_dataset_descriptions(tmp_path):
    with pytest.raises(ValueError, match=re.escape("`num_classes` must be at least 2, got 1: with one class")):
        SPGNet(1, backbones=("resnet18",), decoder_channels=8)
    with pytest.raises(ValueError, match=re.escape("`DatasetSpec 'x': num_classes` must be at least 2, got 1")):
        DatasetSpec(1, ("thing",), ((0, 0, 0),), name="x")
    (tmp_path / "meta.json").write_text('{"classes": ["thing"], "palette": [[0, 0, 0]]}')
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'meta.json'}` must be at least 2, got 1")):
        dataset_spec("folder", tmp_path)


def test_a_key_given_twice_in_yaml_is_an_error_naming_key_and_lines(tmp_path, capsys):
    config = tmp_path / "twice.yaml"
    config.write_text("data: {batch_size: 4}\nrun:\n  epochs: 2\n  epochs: 3\n")
    with pytest.raises(ValueError, match=re.escape(f"{config}: key 'epochs' appears twice (lines 3 and 4)")):
        load_config(config)
    config.write_text("data: {batch_size: 4}\nrun: {epochs: 2}\ndata: {batch_size: 8}\n")
    line = one_line_error(capsys, "train", "--config", config)
    assert line.endswith(f"{config}: key 'data' appears twice (lines 1 and 3); merge the two into one.")
    line = one_line_error(capsys, "train", "--config", config.with_name("none.yaml"), "--set", "run.epochs=2")
    assert "does not exist" in line
    assert "appears twice" in one_line_error(capsys, "train", "--config", tmp_path / "twice.yaml")
    with pytest.raises(yaml.YAMLError, match="could not determine a constructor"):  # still a SafeLoader
        load_yaml("run: !!python/object/apply:os.system ['echo PWNED']\n")
    # Merge keys are an explicit override, not a duplicate.
    assert load_yaml("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  a: 3\n")["x"] == {"a": 3, "b": 2}


# ---------------------------------------------------------------- bounded sizes


def test_decoder_width_is_bounded_in_the_model_and_the_config():
    with pytest.raises(ValueError, match=re.escape(f"`decoder_channels` must be at most {MAX_DECODER_CHANNELS}")):
        SPGNet(3, backbones=("resnet18",), decoder_channels=MAX_DECODER_CHANNELS + 1)
    with pytest.raises(ValueError, match=re.escape("--set: model: `decoder_channels` must be at most")):
        apply_overrides(ExperimentConfig(), {"model": {"arguments": {"decoder_channels": 100000}}}, source="--set")
    with pytest.raises(ValueError, match=re.escape(f"`data.scales` must be at most {MAX_SCALE} (spgnet_keras.constants.MAX_SCALE; the paper's largest is 2.0), got 8.0")):
        apply_overrides(ExperimentConfig(), {"data": {"scales": [1.0, 8.0]}})
    with pytest.raises(ValueError, match=re.escape(f"data.crop_size sides must be at most {MAX_IMAGE_SIDE}")):
        apply_overrides(ExperimentConfig(), {"data": {"crop_size": [512, MAX_IMAGE_SIDE + 32]}})


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A one-stage SPGNet, a plain Keras classifier, and an image, saved."""
    folder = tmp_path_factory.mktemp("round2")
    keras.utils.set_random_seed(0)
    SPGNet(3, backbones=("resnet18",), decoder_channels=8).save(folder / "one_stage.keras")
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(2)(inputs), name="classifier").save(folder / "classifier.keras")
    Image.fromarray(np.full((64, 96, 3), 100, np.uint8)).save(folder / "image.png")
    return folder


def test_inference_sizes_are_bounded_before_any_model_call():
    inputs = keras.Input((None, None, 3))
    never_called = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    image = np.zeros((64, 96, 3), np.uint8)
    cases = [
        (dict(scales=(MAX_SCALE * 2,)), f"`scales` must be at most {MAX_SCALE}"),
        (dict(window=MAX_WINDOW_SIDE + 32), f"`window` sizes must be at most {MAX_WINDOW_SIDE}"),
        (dict(batch_size=MAX_INFERENCE_BATCH + 1), f"`batch_size` must be at most {MAX_INFERENCE_BATCH}"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            predict_logits(never_called, image, **kwargs)
        with pytest.raises(ValueError, match=re.escape(message)):
            evaluate(never_called, [(image, np.zeros((64, 96), np.uint8))], num_classes=2, **kwargs)
    strip = np.zeros((1, MAX_IMAGE_SIDE + 1, 3), np.uint8)  # would be padded to 32 rows
    with pytest.raises(ValueError, match=re.escape(f"The image is 1x{MAX_IMAGE_SIDE + 1} = ")):
        predict_logits(never_called, strip)
    side = 4096  # at MAX_IMAGE_PIXELS; twice that side is 4x too many pixels
    with pytest.raises(ValueError, match=re.escape(f"At scale 2 the {side}x{side} image is 8192x8192 = ")):
        check_workload(side, side, (1.0, 2.0), None, None)
    assert side * side == MAX_IMAGE_PIXELS
    with pytest.raises(ValueError, match=re.escape(f"more than the limit of {MAX_WINDOWS_PER_IMAGE}")):
        check_workload(2048, 2048, (1.0,), (64, 64), (1, 1))
    check_workload(1024, 2048, (0.75, 1.0, 2.0), (512, 512), (341, 341))  # the paper's test, windowed


# ---------------------------------------------------------------- CLI: clean one-line errors


def test_cli_refuses_foreign_models_one_stage_attention_and_non_utf8_names(model_files, tmp_path, capsys):
    image = model_files / "image.png"
    classifier = model_files / "classifier.keras"
    line = one_line_error(capsys, "predict", image, "--model", classifier, "--out", tmp_path / "a")
    assert line.endswith(f"--model {classifier} holds a Functional named 'classifier', not an SPGNet; give a model "
                         "saved from spgnet_keras.SPGNet (e.g. runs/<name>/checkpoints/best.keras).")
    data = tmp_path / "data"
    for folder in ("images", "labels"):
        (data / folder).mkdir(parents=True)
        Image.fromarray(np.zeros((64, 96), np.uint8)).save(data / folder / "x.png")
    line = one_line_error(capsys, "evaluate", "--model", classifier, "--data", data, "--dataset", "folder")
    assert f"--model {classifier} holds a Functional" in line

    strip = tmp_path / "strip.png"  # 16385 pixels: fine for the reader, too wide for a pass
    Image.fromarray(np.zeros((1, MAX_IMAGE_SIDE + 1, 3), np.uint8)).save(strip)
    line = one_line_error(capsys, "predict", strip, "--model", classifier, "--out", tmp_path / "s")
    assert line.startswith(f"spgnet predict: error: {strip}: The image is 1x{MAX_IMAGE_SIDE + 1} = ")  # before loading
    line = one_line_error(capsys, "profile", "--height", MAX_IMAGE_SIDE + 1, "--width", 64)
    assert f"--height x --width is {MAX_IMAGE_SIDE + 1}x64 = " in line

    one_stage = model_files / "one_stage.keras"
    line = one_line_error(capsys, "predict", image, "--model", one_stage, "--out", tmp_path / "b", "--attention", "1")
    assert line.endswith(f"--attention needs a model of two or more stages (guided attention is the SPG module "
                         f"between stages, paper Sec 4.5); --model {one_stage} has 1 stage.")
    assert not (tmp_path / "b").exists()

    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / os.fsdecode(b"caf\xe9.png")).write_bytes(image.read_bytes())  # Latin-1 bytes, not UTF-8
    expected = "the name is not valid UTF-8 (undecodable bytes shown as \\xNN); rename it and try again."
    for inputs in (odd / os.fsdecode(b"caf\xe9.png"), odd):  # on the command line; found in a folder
        line = one_line_error(capsys, "predict", inputs, "--model", one_stage, "--out", tmp_path / "c")
        assert line == f"spgnet predict: error: input {odd}/caf\\xe9.png: {expected}"
    line = one_line_error(capsys, "evaluate", "--model", odd / os.fsdecode(b"m\xff.keras"), "--data", data,
                          "--dataset", "folder")
    assert line == f"spgnet evaluate: error: --model {odd}/m\\xff.keras: {expected}"


def test_installed_command_prints_only_the_error_line(model_files, tmp_path):
    """TensorFlow's start-up lines (oneDNN, CUDA, absl) do not reach stderr: one line, exit 2."""
    script = Path(sys.executable).with_name("spgnet")
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    classifier = model_files / "classifier.keras"
    result = subprocess.run(
        [script, "predict", model_files / "image.png", "--model", classifier, "--out", tmp_path / "out"],
        capture_output=True, text=True, env=environment, timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        f"spgnet predict: error: --model {classifier} holds a Functional named 'classifier', not an SPGNet; "
        "give a model saved from spgnet_keras.SPGNet (e.g. runs/<name>/checkpoints/best.keras)."
    ]
