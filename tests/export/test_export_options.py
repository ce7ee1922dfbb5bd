"""Export options (stage, scales, flip, output size), atomic writes, overwrite refusal, the CLI."""

import argparse
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from spgnet_keras import SPGNet
from spgnet_keras.cli import export_command
from spgnet_keras.export import Segmenter, export_saved_model
from spgnet_keras.export import saved_model as saved_model_module
from tests.export.reference import keras_logits, smooth_image, softmax
from tests.helpers import assert_close_at_scale

NUM_CLASSES = 4


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(3)
    return SPGNet(NUM_CLASSES, backbones=("resnet18", "resnet18"), decoder_channels=16)


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(4)
    return SPGNet(NUM_CLASSES, backbones=("resnet18",), decoder_channels=16)


def _resize(x, size):
    return tf.image.resize(x, size, method="bilinear").numpy()


def test_multiscale_flip_averages_softmax(model):
    """scales (0.5, 1) x flip: the mean of 4 softmax maps, each computed on the padded, scaled,
    flipped image, cropped, flipped back and resized to the image."""
    image = smooth_image(45, 70, seed=5)[None].astype("float32")
    total = 0
    for scale in (0.5, 1.0):
        size = (round(45 * scale), round(70 * scale))
        scaled = image if scale == 1.0 else _resize(image, size)  # the 0-255 image is resized
        for flip in (False, True):
            x = scaled[:, :, ::-1] if flip else scaled
            logits = keras_logits(model, x, output="stage1")
            probabilities = softmax(logits)
            if flip:
                probabilities = probabilities[:, :, ::-1]
            total = total + (probabilities if scale == 1.0 else _resize(probabilities, (45, 70)))
    expected = total / 4
    segmenter = Segmenter(model, output="stage1", scales=(0.5, 1.0), flip=True, include_probabilities=True)
    out = segmenter(tf.constant(image))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=2e-5)
    agreement = np.mean(out["classes"].numpy() == np.argmax(expected, -1))
    assert agreement > 0.999, agreement


def test_output_size_resizes_probabilities(small_model):
    image = smooth_image(64, 96, seed=6)[None].astype("float32")
    out = Segmenter(small_model, output_size=(32, 40), include_probabilities=True)(tf.constant(image))
    expected = _resize(softmax(keras_logits(small_model, image)), (32, 40))
    assert out["classes"].shape == (1, 32, 40)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(out["classes"].numpy(), np.argmax(expected, -1))


def test_fixed_size_spgnet_is_rebuilt_for_any_size():
    from spgnet_keras.export.saved_model import servable_model

    keras.utils.set_random_seed(5)
    fixed = SPGNet(3, backbones=("resnet18",), decoder_channels=16, image_shape=(64, 64, 3))
    rebuilt = servable_model(fixed)
    assert rebuilt.input_shape == (None, None, None, 3)
    image = smooth_image(64, 64, seed=1)[None]
    assert_close_at_scale(keras_logits(rebuilt, image), keras_logits(fixed, image))
    out = Segmenter(rebuilt)(tf.zeros([1, 33, 70, 3]))
    assert out["classes"].shape == (1, 33, 70)
    plain = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(2, 1)])
    with pytest.raises(ValueError, match="fixed input size"):
        servable_model(plain)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"output": "stage9"}, "`output` must be one of"),
        ({"scales": ()}, "`scales` must contain at least one scale"),
        ({"scales": (1.0, -0.5)}, "`scales` must be positive numbers, got -0.5"),
        ({"output_size": (0, 10)}, "`output_size`"),
        ({"output_size": "big"}, "`output_size`"),
        ({"max_pixels": 0}, "`max_pixels`"),
    ],
)
def test_bad_options_raise(small_model, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        export_saved_model(small_model, tmp_path / "m" / "1", **kwargs)
    assert not (tmp_path / "m" / "1").exists()


def test_version_folder_must_be_numeric(small_model, tmp_path):
    with pytest.raises(ValueError, match="numeric version"):
        export_saved_model(small_model, tmp_path / "m" / "latest")


def _entries(folder):
    return sorted(p.name for p in folder.iterdir())


def test_overwrite_refusal_and_atomic_failures(small_model, tmp_path, monkeypatch):
    """An existing version is refused without overwrite=True; a write that fails midway (files
    already written, then an error) leaves no new version folder, no temporary folder, and the
    previous version intact; overwrite=True replaces the version."""
    archive_class = type(keras.export.ExportArchive())
    target = tmp_path / "m" / "1"
    export_saved_model(small_model, target)
    stamp = (target / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(ValueError, match="already exists"):
        export_saved_model(small_model, target)
    assert (target / "saved_model.pb").stat().st_mtime_ns == stamp

    written = []

    def write_partly_then_fail(self, filepath, *args, **kwargs):
        os.makedirs(os.path.join(filepath, "variables"))
        with open(os.path.join(filepath, "saved_model.pb"), "wb") as f:
            f.write(b"half a model")
        written.append(filepath)
        raise OSError("simulated failure: disk full")

    monkeypatch.setattr(archive_class, "write_out", write_partly_then_fail)
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(small_model, tmp_path / "m" / "2")
    assert os.path.basename(written[-1]).startswith(".2.tmp-")  # a hidden, non-numeric sibling
    assert _entries(tmp_path / "m") == ["1"]
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(small_model, target, overwrite=True)
    assert _entries(tmp_path / "m") == ["1"]
    assert (target / "saved_model.pb").stat().st_mtime_ns == stamp

    served = tf.saved_model.load(str(target))  # the previous version is whole
    assert "probabilities" not in served.signatures["predict_images"].structured_outputs

    def write_marker(self, filepath, *args, **kwargs):
        os.makedirs(filepath)
        with open(os.path.join(filepath, "saved_model.pb"), "wb") as f:
            f.write(b"new version")

    monkeypatch.setattr(archive_class, "write_out", write_marker)
    export_saved_model(small_model, target, overwrite=True)
    assert _entries(tmp_path / "m") == ["1"]  # nothing temporary or moved aside is left
    assert (target / "saved_model.pb").read_bytes() == b"new version"
    assert not (target / "variables").exists()


def test_overwrite_never_replaces_a_folder_that_is_not_an_export(small_model, tmp_path):
    """A run or a dataset with a number for a name is not an earlier export: `overwrite` keeps it."""
    run = tmp_path / "experiments" / "3"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.keras").write_bytes(b"weeks of training")
    with pytest.raises(ValueError, match=r"3 holds files but no saved_model.pb: it is not an earlier export"):
        export_saved_model(small_model, run, overwrite=True)
    assert (run / "checkpoints" / "best.keras").read_bytes() == b"weeks of training"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "4").write_text("a file")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        export_saved_model(small_model, tmp_path / "m" / "4", overwrite=True)
    (tmp_path / "m" / "5").mkdir()  # an empty folder is taken
    export_saved_model(small_model, tmp_path / "m" / "5", overwrite=True)
    assert (tmp_path / "m" / "5" / "saved_model.pb").is_file()


def test_write_atomically_restores_previous_version_when_rename_fails(tmp_path, monkeypatch):
    from spgnet_keras.export import saved_model as saved_model_module

    target = tmp_path / "m" / "1"
    target.mkdir(parents=True)
    (target / "old.txt").write_text("old")
    real_rename = os.rename

    def rename(source, destination):
        if ".tmp-" in str(source):
            raise OSError("simulated rename failure")
        return real_rename(source, destination)

    monkeypatch.setattr(saved_model_module.os, "rename", rename)

    def write(folder):
        folder.mkdir()
        (folder / "new.txt").write_text("new")

    with pytest.raises(OSError, match="rename failure"):
        saved_model_module.write_atomically(target, write, overwrite=True)
    assert _entries(tmp_path / "m") == ["1"]
    assert (target / "old.txt").read_text() == "old"


def test_versions_1_and_01_are_one_version(tmp_path):
    from pathlib import Path

    (tmp_path / "m" / "1").mkdir(parents=True)
    with pytest.raises(ValueError, match="same version"):
        saved_model_module.check_version_dir(tmp_path / "m" / "01")
    with pytest.raises(ValueError, match="same version"):
        saved_model_module.check_version_dir(tmp_path / "m" / "001")
    saved_model_module.check_version_dir(tmp_path / "m" / "1")  # the folder itself: --overwrite decides
    saved_model_module.check_version_dir(tmp_path / "m" / "10")
    assert saved_model_module.same_version_folders(Path(tmp_path / "m" / "01")) == [tmp_path / "m" / "1"]


def test_overwrite_leaves_no_hidden_folders_even_after_an_interrupted_export(tmp_path):
    target = tmp_path / "m" / "3"
    target.mkdir(parents=True)
    (target / "old.txt").write_text("old")
    # What a killed export leaves: a half-written version and a moved-aside copy.
    (tmp_path / "m" / ".3.tmp-deadbeef").mkdir()
    (tmp_path / "m" / ".3.old-deadbeef").mkdir()

    def write(folder):
        folder.mkdir()
        (folder / "new.txt").write_text("new")

    saved_model_module.write_atomically(target, write, overwrite=True)
    assert _entries(tmp_path / "m") == ["3"]
    assert (target / "new.txt").read_text() == "new"


def test_interrupted_overwrite_puts_the_previous_version_back(tmp_path):
    base = tmp_path / "m"
    base.mkdir()
    moved_aside = base / ".4.old-cafe0000"  # killed between the two renames: no "4" now
    moved_aside.mkdir()
    (moved_aside / "old.txt").write_text("old")

    def write(folder):
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError, match="export failed"):
        saved_model_module.write_atomically(base / "4", write, overwrite=True)
    assert _entries(base) == ["4"] and (base / "4" / "old.txt").read_text() == "old"


def _cli(argv):
    parser = argparse.ArgumentParser(prog="spgnet")
    export_command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["export", *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def checkpoint(small_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("checkpoint") / "model.keras"
    small_model.save(path)
    return path


def test_cli_exports_options_that_serve_like_segmenter(checkpoint, small_model, tmp_path, capsys):
    """`spgnet export` with flip + scale 0.75 + a fixed output size: the SavedModel serves what
    the in-process Segmenter computes, has no `probabilities` (not asked for), and records
    its options; a second export to the same version is refused."""
    out = tmp_path / "models" / "spgnet" / "7"
    argv = [str(checkpoint), "--out", str(out), "--scales", "0.75", "--flip", "--output-size", "48x64"]
    assert _cli(argv) == 0
    assert "SavedModel written" in capsys.readouterr().out
    metadata = json.loads((out / "assets.extra" / "spgnet_export.json").read_text())
    assert metadata["scales"] == [0.75] and metadata["flip"] is True and metadata["output_size"] == [48, 64]
    assert metadata["include_probabilities"] is False and metadata["num_classes"] == NUM_CLASSES
    with pytest.raises(ValueError, match="already exists"):
        _cli([str(checkpoint), "--out", str(out)])

    served = tf.saved_model.load(str(out))
    image = smooth_image(50, 70, seed=8)
    small = smooth_image(30, 20, seed=9)
    result = served.signatures["predict_images"](images=tf.constant(image[None]))
    assert set(result) == {"classes", "image_sizes"}
    expected = Segmenter(small_model, scales=(0.75,), flip=True, output_size=(48, 64))(
        tf.constant(image[None].astype("float32"))
    )["classes"].numpy()
    np.testing.assert_array_equal(result["classes"].numpy(), expected)
    # Different input sizes, one fixed output size: no padding; sizes are the output size.
    encoded = [tf.io.encode_png(image).numpy(), tf.io.encode_png(small).numpy()]
    batch = served.signatures["serving_default"](images=tf.constant(encoded))
    assert batch["classes"].shape == (2, 48, 64)
    np.testing.assert_array_equal(batch["image_sizes"].numpy(), [[48, 64], [48, 64]])
    np.testing.assert_array_equal(batch["classes"].numpy()[:1], expected)


@pytest.mark.parametrize(
    "argv, error, message",
    [
        (["missing.keras", "--out", "m/1"], FileNotFoundError, "Checkpoint file not found: missing.keras"),
        (["{ckpt}", "--out", "m/1", "--scales", "a,b"], ValueError, "--scales"),
        (["{ckpt}", "--out", "m/1", "--output-size", "12"], ValueError, "--output-size"),
        (["{ckpt}", "--out", "m/1", "--input-size", "64x64"], ValueError, "--input-size"),
        (["{ckpt}", "--out", "m.onnx", "--format", "onnx"], ValueError, "--input-size"),
        (["{ckpt}", "--out", "m.onnx", "--format", "onnx", "--input-size", "64x64", "--flip"], ValueError, "--flip"),
        (["{ckpt}", "--out", "m/1", "--output", "stage1"], ValueError, "`output` must be one of"),
    ],
)
def test_cli_errors(checkpoint, tmp_path, monkeypatch, argv, error, message):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{ckpt}", str(checkpoint)) for a in argv]
    with pytest.raises(error, match=message):
        _cli(argv)
    assert not (tmp_path / "m").exists()


def test_cli_help_lists_options():
    parser = argparse.ArgumentParser(prog="spgnet")
    export_command.add_parser(parser.add_subparsers(dest="command"))
    subparser = parser._subparsers._group_actions[0].choices["export"]
    text = subparser.format_help()
    for option in ("--out", "--format", "--output", "--scales", "--flip", "--output-size", "--probabilities",
                   "--max-pixels", "--overwrite", "--input-size"):
        assert option in text


def test_exported_tta_equals_inference_tta_on_camvid_frames(camvid_root, tmp_path):
    """One multi-scale + flip implementation (`spgnet_keras.multiscale`): the exported
    SavedModel and `inference.predict_probabilities` give the same probabilities, not only
    the same class maps, on real CamVid frames (240x180, not multiples of 32)."""
    from spgnet_keras.data import dataset_files, load_image
    from spgnet_keras.inference import predict_probabilities

    model = SPGNet(NUM_CLASSES, backbones=("resnet18", "resnet18"), decoder_channels=8)
    # An untrained network's logits are of order 1e4, which turns float rounding (graph vs
    # eager kernels) into visible probability changes; scale the classifier down to logits
    # of order 1, as a trained network has.
    classifier = model.get_layer("stage2_classifier")
    classifier.set_weights([weight * 1e-3 for weight in classifier.get_weights()])
    scales = (0.75, 1.25)
    export_saved_model(model, tmp_path / "m" / "1", scales=scales, flip=True, include_probabilities=True)
    served = tf.saved_model.load(str(tmp_path / "m" / "1")).signatures["predict_images"]
    frames = [load_image(image) for image, _ in dataset_files("camvid", camvid_root, "val")[:2]]
    for frame in frames:
        expected = predict_probabilities(model, frame, scales=scales, flip=True)
        result = served(images=tf.constant(frame[None]))
        probabilities = result["probabilities"].numpy()[0]
        assert probabilities.shape == expected.shape == (180, 240, NUM_CLASSES)
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)
        np.testing.assert_array_equal(result["classes"].numpy()[0], np.argmax(expected, -1))
