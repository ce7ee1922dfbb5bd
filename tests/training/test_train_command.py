"""The `spgnet train` command end to end, config errors (file, key, type, section, model
argument, experiment, `--set`) and the num_classes check between config and dataset."""

import csv
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from spgnet_keras import training
from spgnet_keras.cli import main
from spgnet_keras.cli.train_command import parse_assignments
from spgnet_keras.config import (
    ExperimentConfig,
    LossConfig,
    OptimizerConfig,
    apply_overrides,
    experiment_config,
    load_config,
    paper_ohem_loss,
)
from spgnet_keras.constants import DEFAULT_STAGE_WEIGHT
from spgnet_keras.models.spgnet import SPGNet
from spgnet_keras.training import make_datasets, recipe_compile_arguments, train
from tests.training.conftest import tiny_synthetic_sections, write_config


def test_train_command_end_to_end(synthetic_root, tmp_path, capsys, monkeypatch):
    """`spgnet train`: the recipe compiled with `recipe_compile_arguments`, fit on the
    pipeline's (0-255 image, mask) pairs, the best checkpoint chosen on `val_prediction_miou`."""
    seen = {}
    real_fit, real_make_callbacks = SPGNet.fit, training.make_callbacks

    def recording_fit(model, x=None, *args, **kwargs):
        seen["train_spec"], seen["val_spec"] = x.element_spec, kwargs["validation_data"].element_spec
        seen["loss_weights"] = dict(model._compile_config.config["loss_weights"])
        return real_fit(model, x, *args, **kwargs)

    def recording_make_callbacks(*args, **kwargs):
        seen["monitor"] = kwargs["monitor"]
        return real_make_callbacks(*args, **kwargs)

    monkeypatch.setattr(SPGNet, "fit", recording_fit)
    monkeypatch.setattr(training, "make_callbacks", recording_make_callbacks)
    config = write_config(tmp_path / "tiny.yaml", tiny_synthetic_sections(synthetic_root, epochs=3))
    out_dir = tmp_path / "run"
    code = main(["train", "--config", str(config), "--set", "run.epochs=1", "--set", f"run.out_dir={out_dir}",
                 "--set", "model.arguments={decoder_channels: 8}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    printed = json.loads(captured.out[captured.out.index("{"):])
    assert printed["checkpoint"] == str(out_dir / "checkpoints" / "latest.keras")
    assert (out_dir / "report" / "index.html").is_file() and "report: " in captured.err  # spgnet train ends with it
    final = printed["final"]
    for key in ("loss", "prediction_loss", "stage1_loss", "prediction_miou",
                "val_loss", "val_prediction_loss", "val_stage1_loss", "val_prediction_miou"):
        assert math.isfinite(final[key]), (key, final)

    # fit got (image, mask) pairs, not one target per output: float32 RGB 0-255 and (B, H, W) masks.
    for spec in (seen["train_spec"], seen["val_spec"]):
        image, mask = spec
        assert image.dtype == tf.float32 and image.shape.rank == 4 and image.shape[-1] == 3
        assert isinstance(mask, tf.TensorSpec) and mask.shape.rank == 3
    assert tuple(seen["train_spec"][0].shape[1:3]) == (64, 96)
    # The paper's plain sum of the stage losses (DEFAULT_STAGE_WEIGHT), and the monitored
    # metric is one that fit logs (best.keras below exists only if it was found).
    assert seen["loss_weights"] == {"prediction": 1.0, "stage1": DEFAULT_STAGE_WEIGHT}
    assert seen["monitor"] == "val_prediction_miou" and "val_prediction_miou" in final
    assert math.isclose(final["loss"], final["prediction_loss"] + DEFAULT_STAGE_WEIGHT * final["stage1_loss"],
                        rel_tol=1e-4)

    # config.json: the YAML file with the --set overrides on top of the named experiment.
    written = json.loads((out_dir / "config.json").read_text())
    assert written["run"]["epochs"] == 1 and written["run"]["steps_per_epoch"] == 2
    assert written["run"]["out_dir"] == str(out_dir)
    assert written["model"] == {"preset": "spgnet_r18x2_128", "arguments": {"decoder_channels": 8},
                                "backbone_weights": None, "weights": None}
    assert written["data"]["root"] == str(synthetic_root) and written["data"]["crop_size"] == [64, 96]
    assert written["data"]["scales"] == [0.75, 1.0, 1.25]  # from experiment synthetic_demo

    with open(out_dir / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and rows[0]["epoch"] == "0"
    assert math.isclose(float(rows[0]["loss"]), final["loss"], rel_tol=1e-6)
    assert math.isclose(float(rows[0]["val_prediction_miou"]), final["val_prediction_miou"], rel_tol=1e-6)

    checkpoints = out_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.json", "best.keras", "latest.keras"]  # no temporaries
    model = keras.saving.load_model(checkpoints / "latest.keras", safe_mode=True)
    assert isinstance(model, SPGNet)
    assert model.decoder_channels == 8 and model.num_classes == 8
    assert model.include_preprocessing and model.get_layer("preprocessing") is not None
    # Test-time pooling over the training crop's extent (In-Place ABN), recorded in the model.
    assert model.test_pooling == "crop" and tuple(model.test_pooling_crop) == (64, 96)
    outputs = model(np.zeros((1, 64, 96, 3), np.float32), training=False)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {"prediction": (1, 64, 96, 8), "stage1": (1, 64, 96, 8)}
    # The trained model takes uint8 RGB of any size.
    image = np.random.default_rng(0).integers(0, 256, size=(1, 45, 70, 3), dtype=np.uint8)
    prediction = model.predict(image, verbose=0)["prediction"]
    assert prediction.shape == (1, 45, 70, 8) and np.isfinite(prediction).all()
    # The checkpoint keeps the recipe's compile arguments: it can be trained further on pairs.
    from spgnet_keras.losses import SegmentationCrossEntropy
    from spgnet_keras.optimizers import KernelDecaySGD

    assert isinstance(model.optimizer, KernelDecaySGD)
    assert all(isinstance(loss, SegmentationCrossEntropy) for loss in model.loss.values())
    # BackupAndRestore deletes its folder once training ends without a crash.
    assert not (out_dir / "backup").exists()
    assert (out_dir / "tensorboard" / "train").is_dir()


def test_recipe_compile_arguments_compile_a_model_that_fits_image_mask_pairs():
    """`model.compile(**recipe_compile_arguments(...))`: poly-decay SGD, the cross-entropy
    (+OHEM) on every output weighted by `stage_weight`, mIoU on "prediction"; the model
    then takes (uint8 image, mask) pairs of any size."""
    from spgnet_keras.losses import SegmentationCrossEntropy
    from spgnet_keras.optimizers import KernelDecaySGD
    from spgnet_keras.schedules import PolyDecay

    model = SPGNet(5, backbones=("resnet18", "resnet18"), decoder_channels=8)
    arguments = recipe_compile_arguments(model, OptimizerConfig(learning_rate=0.02, warmup_steps=3),
                                         LossConfig(ohem_threshold=0.7, ohem_min_kept=10), max_steps=100)
    assert set(arguments) == {"optimizer", "loss", "loss_weights", "metrics"}
    optimizer = arguments["optimizer"]
    assert isinstance(optimizer, KernelDecaySGD)
    schedule = keras.saving.deserialize_keras_object(optimizer.get_config()["learning_rate"])
    assert schedule.get_config() == PolyDecay(0.02, 100, warmup_steps=3).get_config()
    assert set(arguments["loss"]) == {"prediction", "stage1"}
    assert all(isinstance(loss, SegmentationCrossEntropy) and loss.ohem_threshold == 0.7 and loss.ohem_min_kept == 10
               for loss in arguments["loss"].values())
    assert arguments["loss_weights"] == {"prediction": 1.0, "stage1": DEFAULT_STAGE_WEIGHT}
    [metric] = arguments["metrics"]["prediction"]
    assert metric.name == "miou"
    weighted = recipe_compile_arguments(model, OptimizerConfig(), LossConfig(stage_weight=0.4), max_steps=10)
    assert weighted["loss_weights"] == {"prediction": 1.0, "stage1": 0.4}

    model.compile(**weighted)
    model.run_eagerly = True  # a few eager steps cost less than tracing
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 45, 70, 3), dtype=np.uint8)
    masks = rng.integers(0, 5, size=(2, 45, 70)).astype(np.int32)
    masks[:, :5] = 255
    scores = model.evaluate(images, masks, batch_size=2, verbose=0, return_dict=True)
    assert set(scores) == {"loss", "prediction_loss", "stage1_loss", "prediction_miou"}
    assert scores["loss"] == pytest.approx(scores["prediction_loss"] + 0.4 * scores["stage1_loss"], rel=1e-5)
    logs = model.train_on_batch(images, masks, return_dict=True)
    assert all(math.isfinite(value) for value in logs.values()), logs


# --------------------------------------------------------------------------- config errors

BAD_CONFIGS = {
    "unknown key": ({"run": {"epochz": 2}}, "unknown key run.epochz"),
    "wrong type": ({"run": {"epochs": "two"}}, "run.epochs must be of type int"),
    "bool for int": ({"run": {"epochs": True}}, "run.epochs must be of type int"),
    "float for int": ({"data": {"batch_size": 2.5}}, "data.batch_size must be of type int"),
    "str for float": ({"optimizer": {"learning_rate": "fast"}}, "optimizer.learning_rate must be of type float"),
    "str for bool": ({"data": {"flip": "yes"}}, "data.flip must be true or false"),
    "not a list": ({"data": {"crop_size": 64}}, "data.crop_size must be a list"),
    "list item": ({"data": {"crop_size": [64, "96"]}}, "data.crop_size[1] must be of type int"),
    "float list item": ({"data": {"scales": [1.0, "big"]}}, "data.scales[1] must be of type float"),
    "unknown section": ({"modle": {"preset": "spgnet_r18x1_128"}}, "unknown section 'modle'"),
    "section not a mapping": ({"run": 3}, "section 'run' must be a mapping"),
    "unknown model argument": ({"model": {"arguments": {"decoder_chanels": 8}}},
                               "unknown key model.arguments.decoder_chanels"),
    "arguments not a mapping": ({"model": {"arguments": [8]}}, "model.arguments must be of type dict"),
    "unknown experiment": ({"experiment": "cityscape_paper"}, "unknown experiment 'cityscape_paper'"),
    "experiment not a name": ({"experiment": ["camvid_cpu"]}, "unknown experiment ['camvid_cpu']"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_config_file_errors_name_key_and_file(case, tmp_path):
    sections, message = BAD_CONFIGS[case]
    path = write_config(tmp_path / "bad.yaml", sections)
    with pytest.raises(ValueError) as error:
        load_config(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("text, message", [
    ("run: [1, 2\n", "not valid YAML"),
    ("- run\n- data\n", "top level must be a mapping"),
])
def test_config_file_not_a_mapping(text, message, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        load_config(path)
    assert str(path) in str(error.value)


def test_config_file_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")


def test_config_file_values_and_defaults(tmp_path):
    path = write_config(tmp_path / "ok.yaml", {
        "experiment": "cityscapes_paper",
        "optimizer": {"learning_rate": 1},
        "data": {"scales": [1, 1.5], "root": "/data/cityscapes"},
        "loss": {"class_weights": None},
    })
    config = load_config(path)
    assert config.optimizer.learning_rate == 1.0 and isinstance(config.optimizer.learning_rate, float)
    assert config.data.scales == [1.0, 1.5] and all(isinstance(s, float) for s in config.data.scales)
    # Everything else comes from the named experiment.
    assert config.model.preset == "spgnet_r50x2_256" and config.loss.ohem_threshold == 0.7
    assert config.data.crop_size == [768, 768] and config.max_steps == 80 * 1000
    # Without `experiment:` the file overrides camvid_cpu.
    assert load_config(write_config(tmp_path / "plain.yaml", {"run": {"epochs": 1}})).data.dataset == "camvid"
    # Fresh copies: changing one config leaves the experiment untouched.
    config.model.arguments["x"] = 1
    assert experiment_config("cityscapes_paper").model.arguments == {}


def test_paper_ohem_scales_the_kept_pixels_with_the_crop():
    assert paper_ohem_loss().ohem_min_kept == 12500 and paper_ohem_loss().ohem_threshold == 0.7
    assert paper_ohem_loss((160, 224)).ohem_min_kept == 760  # 12500 * 160 * 224 / 768**2 = 759.6
    assert paper_ohem_loss((8, 8)).ohem_min_kept == 1 and paper_ohem_loss((8, 8), stage_weight=0.4).stage_weight == 0.4
    loss = experiment_config("cityscapes_paper").loss
    assert (loss.ohem_threshold, loss.ohem_min_kept) == (paper_ohem_loss().ohem_threshold, paper_ohem_loss().ohem_min_kept)


def test_unknown_experiment_name():
    with pytest.raises(ValueError, match="Unknown experiment 'nope'.*camvid_cpu"):
        experiment_config("nope")


@pytest.mark.parametrize("item", ["run.epochs", "epochs=3", ".epochs=3", "run.=3", "=3", "run=3"])
def test_set_malformed(item):
    with pytest.raises(ValueError, match="--set expects SECTION.KEY=VALUE"):
        parse_assignments([item])


def test_set_values_are_yaml():
    assert parse_assignments(["run.epochs=2", "data.crop_size=[64, 96]", "model.arguments={decoder_channels: 8}",
                              "run.out_dir=a=b", "data.num_classes=null", "run.epochs=3"]) == {
        "run": {"epochs": 3, "out_dir": "a=b"},
        "data": {"crop_size": [64, 96], "num_classes": None},
        "model": {"arguments": {"decoder_channels": 8}},
    }
    with pytest.raises(ValueError, match="--set: run.epochs must be of type int"):
        apply_overrides(ExperimentConfig(), parse_assignments(["run.epochs=abc"]), source="--set")


@pytest.mark.parametrize("extra, message", [
    (["--set", "run.epochs"], "--set expects SECTION.KEY=VALUE"),
    (["--set", "run.epochs=abc"], "--set: run.epochs must be of type int"),
    (["--set", "model.arguments={decoder_chanels: 8}"], "--set: unknown key model.arguments.decoder_chanels"),
])
def test_train_command_reports_set_errors(extra, message, tmp_path, capsys):
    path = write_config(tmp_path / "ok.yaml", {"run": {"out_dir": str(tmp_path / "never")}})
    assert main(["train", "--config", str(path), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spgnet train: error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "never").exists()


def test_train_command_reports_config_file_errors(tmp_path, capsys):
    path = write_config(tmp_path / "bad.yaml", {"run": {"epochz": 1}})
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spgnet train: error:") and str(path) in err and "run.epochz" in err


# --------------------------------------------------------------------------- num_classes

def test_num_classes_mismatch_with_dataset(synthetic_root, camvid_root, tmp_path):
    config = load_config(write_config(tmp_path / "c.yaml", {
        **tiny_synthetic_sections(synthetic_root, out_dir=str(tmp_path / "run")), "data": {
            "root": str(synthetic_root), "num_classes": 5}}))
    with pytest.raises(ValueError, match=r"num_classes=5 disagrees with the 8 classes of dataset 'synthetic'"):
        train(config)
    assert not (tmp_path / "run" / "checkpoints").exists()

    camvid = experiment_config("camvid_cpu")
    camvid.data.root, camvid.data.num_classes = str(camvid_root), 12
    with pytest.raises(ValueError, match="num_classes=12 disagrees with the 11 classes of dataset 'camvid'"):
        make_datasets(camvid.data, seed=0, global_batch_size=2)
    camvid.data.num_classes = 11  # agreeing value is accepted
    assert make_datasets(camvid.data, seed=0, global_batch_size=2)[3] == 11
