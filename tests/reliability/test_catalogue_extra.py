"""Bad inputs of docs/reliability.md that no other test covers: config files and `--set`,
CLI arguments checked before any model is loaded, constructor and pipeline arguments, the
non-finite-loss guard, and the safety properties (registered classes, no unsafe loaders).

The CLI cases call `spgnet_keras.cli.main` in-process (the same function `python -m
spgnet_keras.cli` runs) so that they cost no TensorFlow import; one case runs the real
entry point in a subprocess to pin the exit code and the absence of a traceback.
"""

import importlib
import inspect
import math
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import spgnet_keras
from spgnet_keras import SPGNet
from spgnet_keras.callbacks import AtomicCheckpoint, StopOnNonFiniteLoss
from spgnet_keras.cli import main
from spgnet_keras.data import dataset_spec, folder_files, make_dataset, write_synthetic_folder

PACKAGE = Path(spgnet_keras.__file__).resolve().parent


def run_cli(capsys, *argv):
    """(exit code, stderr) of `spgnet ARGV` run in-process."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_one_line_error(code, err, command, fragment):
    assert code == 2, err
    assert err.startswith(f"spgnet {command}: error: "), err
    assert fragment in err, err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return write_synthetic_folder(tmp_path_factory.mktemp("syn"), num_train=2, num_val=1, size=(64, 96))


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return path


# ---------------------------------------------------------------- spgnet train: config file


def test_train_missing_config_file_exits_2_naming_the_file(tmp_path):
    """The real entry point: exit code 2, one line naming the file, no traceback."""
    missing = tmp_path / "missing.yaml"
    result = subprocess.run([sys.executable, "-m", "spgnet_keras.cli", "train", "--config", str(missing)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"spgnet train: error: Config file {missing} does not exist." in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("- a\n- b\n", "the top level must be a mapping of sections, got list."),
        ("run: {epochs: [\n", "not valid YAML"),
        # A Python object tag is refused by yaml.safe_load: nothing is constructed or run.
        ("run: !!python/object/apply:os.system ['echo PWNED']\n",
         "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
        ("runs: {epochs: 3}\n", "unknown section 'runs'; expected one of ['model', 'data', 'optimizer', 'loss', 'run']."),
        ("run: {epoch: 3}\n", "unknown key run.epoch; expected one of ['epochs',"),
        ("run: 3\n", "section 'run' must be a mapping, got 3."),
        ("run: {epochs: three}\n", "run.epochs must be of type int, got 'three'."),
        ("run: {epochs: true}\n", "run.epochs must be of type int, got True."),
        ("data: {flip: 1}\n", "data.flip must be true or false, got 1."),
        ("data: {crop_size: 64}\n", "data.crop_size must be a list, got 64."),
        ("experiment: imagenet\n", "unknown experiment 'imagenet'; expected one of ['camvid_cpu', 'cityscapes_paper', "
                                   "'synthetic_demo']."),
        ("model: {arguments: {decoder_channel: 8}}\n", "unknown key model.arguments.decoder_channel; expected one of"),
    ],
)
def test_bad_config_files_are_one_line_errors(tmp_path, capsys, text, fragment):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    code, err = run_cli(capsys, "train", "--config", path)
    assert_one_line_error(code, err, "train", fragment)
    assert f"error: {path}: " in err  # the file is named
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "assignment, fragment",
    [
        ("run.epochs", "--set expects SECTION.KEY=VALUE, got 'run.epochs'."),
        ("epochs=3", "--set expects SECTION.KEY=VALUE, got 'epochs=3'."),
        ("run.=3", "--set expects SECTION.KEY=VALUE, got 'run.=3'."),
        ("run.epoch=3", "--set: unknown key run.epoch"),
        ("run.epochs=2.5", "--set: run.epochs must be of type int, got 2.5."),
    ],
)
def test_malformed_set_overrides(tmp_path, capsys, assignment, fragment):
    path = tmp_path / "config.yaml"
    path.write_text("experiment: synthetic_demo\n")
    code, err = run_cli(capsys, "train", "--config", path, "--set", assignment)
    assert_one_line_error(code, err, "train", fragment)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ([], "data.root is required for dataset 'synthetic' (or give the folders themselves: --images DIR"),
        (["data.root={missing}"], "Dataset root not found: {missing}"),
        (["data.root={root}", "data.num_classes=3"],
         "num_classes=3 disagrees with the 8 classes of dataset 'synthetic' at {root}."),
        (["data.root={root}", "run.precision=float64"],
         "run.precision must be one of ('float32', 'mixed_float16', 'mixed_bfloat16'), got 'float64'."),
        (["data.root={root}", "data.batch_size=0"], "batch_size must be >= 1, got 0"),
    ],
)
def test_bad_training_setups_fail_before_training(tmp_path, capsys, synthetic_root, overrides, fragment):
    path = tmp_path / "config.yaml"
    path.write_text("experiment: synthetic_demo\n")
    names = dict(root=synthetic_root, missing=tmp_path / "missing")
    argv = ["train", "--config", path, "--set", f"run.out_dir={tmp_path / 'run'}"]
    for item in overrides:
        argv += ["--set", item.format(**names)]
    code, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "train", fragment.format(**names))
    assert not (tmp_path / "run" / "checkpoints").exists()


# ---------------------------------------------------------------- evaluate / predict / export / profile / demo


def test_evaluate_bad_arguments(tmp_path, capsys, synthetic_root):
    model = tmp_path / "m.keras"  # never created: every error comes before the model load
    code, err = run_cli(capsys, "evaluate", "--model", model, "--data", tmp_path / "nodata", "--dataset", "camvid")
    assert_one_line_error(code, err, "evaluate", f"Dataset root not found: {tmp_path / 'nodata'}")
    code, err = run_cli(capsys, "evaluate", "--model", model, "--data", synthetic_root, "--dataset", "folder",
                        "--split", "test")
    assert_one_line_error(code, err, "evaluate",
                          f"Image folder of split 'test' not found: {Path(synthetic_root) / 'test' / 'images'}")
    code, err = run_cli(capsys, "evaluate", "--model", model, "--data", synthetic_root, "--dataset", "folder",
                        "--max-images", "0")
    assert_one_line_error(code, err, "evaluate", "--max-images must be positive, got 0.")
    code, err = run_cli(capsys, "evaluate", "--model", model, "--data", synthetic_root, "--dataset", "folder")
    assert_one_line_error(code, err, "evaluate", f"Model file not found: {model}")


def test_predict_bad_inputs_fail_before_the_model_is_loaded(tmp_path, capsys, image_file):
    model, out = tmp_path / "m.keras", tmp_path / "out"
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.png").write_text("this is not an image")
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "sub" / "a.jpg")
    cases = [
        ([tmp_path / "empty"], [], "No image files (.png, .jpg, .jpeg, .bmp, .gif, .webp) in folder"),
        ([tmp_path / "nope.png"], [], f"Input not found: {tmp_path / 'nope.png'}"),
        ([tmp_path / "notes.png"], [], f"Not a readable image file: {tmp_path / 'notes.png'}"),
        ([image_file, tmp_path / "sub" / "a.jpg"], [], "Two inputs share the name 'a':"),
        ([image_file], ["--alpha", "2"], "--alpha must be in [0, 1], got 2.0."),
        ([image_file], ["--scales", "0"], "`scales` must be positive numbers, got 0.0."),
        ([image_file], ["--scales", "1", "--paper-scales"], "Give either --scales or --paper-scales, not both."),
        ([image_file], ["--window", "50"], "`window` sizes must be multiples of 32, got (50, 50)."),
        ([image_file], ["--window", "32", "32", "32"], "--window takes one size or two (height width), got 3 values."),
        ([image_file], ["--batch-size", "0"], "--batch-size must be positive, got 0."),
        ([image_file], ["--palette", "nosuch"],
         "Palette must be one of ('camvid', 'cityscapes') or an existing file, got 'nosuch'."),
        ([image_file], ["--cityscapes-results"],
         "'a.png' is not a Cityscapes file name (<city>_<seq>_<frame>_leftImg8bit.png)."),
        ([image_file], [], f"Model file not found: {model}"),
    ]
    for inputs, options, fragment in cases:
        code, err = run_cli(capsys, "predict", *inputs, "--model", model, "--out", out, *options)
        assert_one_line_error(code, err, "predict", fragment)
    (tmp_path / "m.txt").write_text("x")
    code, err = run_cli(capsys, "predict", image_file, "--model", tmp_path / "m.txt", "--out", out)
    assert_one_line_error(code, err, "predict", "The model must be a .keras file saved with model.save()")
    assert not out.exists()


def test_export_profile_demo_bad_arguments(tmp_path, capsys):
    code, err = run_cli(capsys, "export", tmp_path / "m.keras", "--out", tmp_path / "exp" / "latest")
    assert_one_line_error(code, err, "export", "The export folder must end in a numeric version")
    code, err = run_cli(capsys, "export", tmp_path / "m.keras", "--out", tmp_path / "exp" / "1")
    assert_one_line_error(code, err, "export", f"Checkpoint file not found: {tmp_path / 'm.keras'}")
    (tmp_path / "m.h5").write_text("x")
    code, err = run_cli(capsys, "export", tmp_path / "m.h5", "--out", tmp_path / "exp" / "1")
    assert_one_line_error(code, err, "export", "The checkpoint must be a .keras file")
    code, err = run_cli(capsys, "export", tmp_path / "m.h5", "--out", tmp_path / "m.onnx", "--format", "onnx",
                        "--input-size", "64x64", "--batch-size", "0")
    assert_one_line_error(code, err, "export", "--batch-size must be positive, got 0.")
    assert not (tmp_path / "exp").exists() and not (tmp_path / "m.onnx").exists()
    code, err = run_cli(capsys, "profile", "--rows", "nothing")
    assert_one_line_error(code, err, "profile", "No paper row matches --rows 'nothing'.")
    code, err = run_cli(capsys, "demo", "--dataset", "camvid", "--out", tmp_path / "demo")
    assert_one_line_error(code, err, "demo", "--dataset needs --data ROOT.")
    assert not (tmp_path / "demo").exists()


def test_argparse_rejects_unknown_commands_and_choices(capsys):
    for argv, fragment in [(["fly"], "invalid choice: 'fly'"),
                           (["profile", "--height", "abc"], "argument --height: invalid int value: 'abc'"),
                           (["evaluate", "--model", "m.keras", "--data", ".", "--dataset", "pascal"],
                            "argument --dataset: invalid choice: 'pascal'")]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert fragment in capsys.readouterr().err


# ---------------------------------------------------------------- Python API: constructor and pipeline


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_classes=3.5), "`num_classes` must be an integer >= 2, got 3.5."),
        (dict(num_classes="3"), "`num_classes` must be an integer >= 2, got '3'."),
        (dict(num_classes=True), "`num_classes` must be an integer >= 2, got True."),
        (dict(num_classes=3, decoder_channels="x"), "`decoder_channels` must be a positive integer, got 'x'."),
        (dict(num_classes=3, backbones=("resnet18", "resnet18"), num_stages=3),
         "`num_stages`=3 disagrees with the 2 backbones given."),
    ],
)
def test_more_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SPGNet(**kwargs)


def test_pipeline_argument_errors(synthetic_root):
    root = Path(synthetic_root)
    pairs = folder_files(root / "train" / "images", root / "train" / "labels")
    cases = [
        (dict(source=pairs, batch_size=1, crop_size=(64, 64), training=False),
         "crop_size is for training; in eval mode use pad_to_multiple and/or batch_size=1"),
        (dict(source=pairs, batch_size=0), "batch_size must be >= 1, got 0"),
        (dict(source=pairs, batch_size=1, num_classes=0), "`num_classes` must be at least 2, got 0"),
        (dict(source=pairs, batch_size=1, validate=True), "validate=True needs num_classes"),
        (dict(source=pairs, batch_size=1, mask_format="color", palette=[(0, 0, 0)], unknown_color="skip"),
         "unknown_color must be 'error' or 'ignore', got 'skip'"),
        (dict(source="pascal", split="train", root=root),
         "Unknown dataset 'pascal'; expected one of ('camvid', 'cityscapes', 'folder', 'synthetic')"),
        (dict(source="camvid", split="train"), "make_dataset('camvid') needs root=<dataset folder>"),
        (dict(source="folder", split="test", root=root, batch_size=1),
         f"Image folder of split 'test' not found: {root / 'test' / 'images'}"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            make_dataset(**kwargs)


def test_bad_meta_json(tmp_path):
    (tmp_path / "meta.json").write_text('{"names": ["a", "b"]}')
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'meta.json'}: a JSON object needs a 'classes' list")):
        dataset_spec("synthetic", tmp_path)
    (tmp_path / "meta.json").write_text('{"classes": ["a", "b"], "palette": [[0, 0, 0]]}')
    with pytest.raises(ValueError, match=re.escape("'palette' must give one [r, g, b] colour per class (2 classes)")):
        dataset_spec("synthetic", tmp_path)
    (tmp_path / "meta.json").write_text('{"classes": ["a", "b"]}')  # colours are optional: the default palette
    spec = dataset_spec("synthetic", tmp_path)
    assert spec.class_names == ("a", "b") and len(set(spec.palette)) == 2


# ---------------------------------------------------------------- faults: non-finite loss


def test_non_finite_loss_stops_fit_at_the_first_step_without_a_checkpoint(tmp_path):
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    guard = StopOnNonFiniteLoss()
    checkpoint = AtomicCheckpoint(tmp_path, guard=guard)
    x = np.full((8, 2), np.nan, np.float32)
    history = model.fit(x, np.zeros((8, 1), np.float32), batch_size=2, epochs=3, callbacks=[guard, checkpoint],
                        verbose=0, shuffle=False)
    assert guard.bad_step == 1 and math.isnan(guard.bad_value)
    assert len(history.history["loss"]) == 1  # stopped in the first epoch
    assert not checkpoint.latest_path.exists() and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- safety


def _package_modules():
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="spgnet_keras."):
        if not info.name.endswith("__main__"):  # importing cli/__main__ would run the command
            yield importlib.import_module(info.name)


def test_every_keras_class_of_the_package_is_registered():
    """`.keras` files load with safe_mode=True only if every custom class is registered."""
    bases = (keras.layers.Layer, keras.losses.Loss, keras.metrics.Metric, keras.optimizers.Optimizer,
             keras.optimizers.schedules.LearningRateSchedule)
    found = {}
    for module in _package_modules():
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, bases) and not name.startswith("_"):
                found[name] = cls
    assert {"SPGNet", "SemanticPredictionGuidance", "SegmentationCrossEntropy", "SegmentationMeanIoU",
            "KernelDecaySGD", "PolyDecay"} <= set(found)
    for name, cls in found.items():
        registered = keras.saving.get_registered_name(cls)
        assert registered.startswith("spgnet_keras>"), (name, registered)
        assert keras.saving.get_registered_object(registered) is cls


UNSAFE = re.compile(
    r"\bpickle\b|allow_pickle\s*=\s*True|yaml\.(load|full_load|unsafe_load)\(|safe_mode\s*=\s*False"
    r"|layers\.Lambda\b|\bLambda\(|\bmarshal\b|\bdill\b|\beval\(|\bexec\("
)


def test_no_unsafe_deserialisation_in_the_package_source():
    hits = [f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
            for path in sorted(PACKAGE.rglob("*.py"))
            for number, line in enumerate(path.read_text().splitlines(), 1) if UNSAFE.search(line)]
    assert hits == []


# --- formerly "known gaps" of docs/reliability.md, now handled -------------------------


@pytest.mark.parametrize("assignment, message", [
    ("run.epochs=[3", "not valid YAML"),
    ("data.crop_size=[64]", "data.crop_size must be \\[height, width\\]"),
    ("run.epochs=-1", "run.epochs must be >= 1"),
    ("run.strategy=tpu", "run.strategy must be one of"),
    ("data.scales=[0]", "`data.scales` must be positive numbers, got 0"),
])
def test_bad_set_values_fail_before_training(tmp_path, capsys, assignment, message):
    from spgnet_keras.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(f"experiment: synthetic_demo\ndata:\n  root: {tmp_path}\nrun:\n  out_dir: {tmp_path / 'out'}\n")
    assert main(["train", "--config", str(config), "--set", assignment]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_diverged_training_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from spgnet_keras import training
    from spgnet_keras.callbacks import TrainingDivergedError
    from spgnet_keras.cli import main

    def diverge(config):
        raise TrainingDivergedError("Training stopped: the loss became nan at step 7.")

    monkeypatch.setattr(training, "train", diverge)
    config = tmp_path / "c.yaml"
    config.write_text(f"experiment: synthetic_demo\ndata:\n  root: {tmp_path}\n")
    assert main(["train", "--config", str(config)]) == 2
    assert "loss became nan at step 7" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["demo", "--epochs", "0"], "run.epochs must be >= 1, got 0"),
    (["demo", "--synthetic-train", "0"], "--synthetic-train must be a positive integer"),
    (["profile", "--height", "0"], "--height and --width must be positive"),
])
def test_non_positive_sizes_are_rejected(tmp_path, capsys, argv, message):
    from spgnet_keras.cli import main

    assert main(argv + (["--out", str(tmp_path / "demo")] if argv[0] == "demo" else [])) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_training_scales_must_be_positive():
    from spgnet_keras.data import make_dataset

    with pytest.raises(ValueError, match="`scales` must be positive numbers, got -1.0"):
        make_dataset([("a.png", "b.png")], batch_size=2, crop_size=(64, 64), training=True, scales=[-1.0])


def test_broken_meta_json_is_named(tmp_path):
    from spgnet_keras.data import dataset_spec

    (tmp_path / "meta.json").write_text("{classes: nope")
    with pytest.raises(ValueError, match="meta.json: not valid JSON"):
        dataset_spec("folder", tmp_path)
