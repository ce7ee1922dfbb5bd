"""Distributed training: 2-replica MirroredStrategy on CamVid (sync BN, deep supervision,
OHEM) and a 2-worker MultiWorkerMirroredStrategy run of the `spgnet train` command."""

import json
import math

import keras
import numpy as np
import pytest

from spgnet_keras.models.spgnet import SPGNet
from spgnet_keras.training import make_strategy
from tests.training.conftest import MultiWorkerRun, background, start_mirrored

LOSS_KEYS = ("loss", "prediction_loss", "stage1_loss")


def test_mirrored_two_replicas_sync_bn_deep_supervision_ohem(camvid_root, tmp_path):
    # Usually started in the background when collection ended (see conftest.py).
    script, result_path = background("mirrored", lambda: start_mirrored(tmp_path))
    script.wait(timeout=600)
    result = json.loads(result_path.read_text())

    assert result["strategy"] == "MirroredStrategy"
    assert result["replicas"] == 2
    assert [d.rsplit("/", 1)[-1] for d in result["devices"]] == ["device:CPU:0", "device:CPU:1"]
    # sync_batchnorm=None turns synchronized BN on under a multi-replica strategy.
    assert result["stem_bn_synchronized"] is True
    assert result["num_bn_layers"] > 20 and result["all_bn_synchronized"] is True
    assert result["output_names"] == ["prediction", "stage1"]

    # The first step's per-output losses (each replica saw half the batch, BN statistics
    # all-reduced, OHEM per image, kept-pixel count all-reduced) equal the single-device
    # losses of the whole batch.
    first, reference = result["first_batch_logs"], result["reference_first_batch"]
    for name in ("prediction", "stage1"):
        assert math.isclose(first[f"{name}_loss"], reference[name], rel_tol=1e-3), (name, first, reference)
    assert result["stage_weight"] == 0.4  # LossConfig(stage_weight=0.4): not the default 1.0
    assert math.isclose(first["loss"], reference["prediction"] + 0.4 * reference["stage1"], rel_tol=1e-3)

    history = result["history"]
    for key in LOSS_KEYS:
        values = history[key]
        assert len(values) == 4 and all(math.isfinite(v) for v in values), (key, values)
        assert values[-1] < values[0], (key, values)
    assert history["loss"][-1] < 0.9 * history["loss"][0], history["loss"]
    assert result["weights_finite"]


def final_json(stdout):
    start = stdout.rfind('{\n  "final"')
    assert start >= 0, stdout[-2000:]
    return json.loads(stdout[start:])


def test_multiworker_train_command_two_workers(synthetic_root, tmp_path):
    """Two `spgnet train` processes on 127.0.0.1 train one 1-stage model together
    (run.strategy=multiworker, each with its own out_dir as on separate machines)."""
    # Usually started in the background when collection ended (see conftest.py).
    run = background("multiworker", lambda: MultiWorkerRun(tmp_path, synthetic_root))
    outputs = run.wait(timeout=540)

    finals = [final_json(stdout)["final"] for stdout, _ in outputs]
    assert set(finals[0]) == {"loss", "prediction_miou", "val_loss", "val_prediction_miou"}
    assert all(math.isfinite(v) for v in finals[0].values())
    # Logs are averaged over the replicas of both workers: the same numbers on each.
    assert finals[0] == finals[1]
    histories = [(out_dir / "history.csv").read_text() for out_dir in run.out_dirs]
    assert histories[0] == histories[1] and len(histories[0].splitlines()) == 3

    models = []
    for out_dir in run.out_dirs:
        assert not (out_dir / "backup").exists()
        assert (out_dir / "checkpoints" / "best.keras").is_file()  # monitored "val_prediction_miou"
        models.append(keras.saving.load_model(out_dir / "checkpoints" / "latest.keras", safe_mode=True))
    assert isinstance(models[0], SPGNet) and models[0].get_layer("stage1_stem_bn").synchronized is False
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        assert a.shape == b.shape and np.array_equal(a, b)


def test_multiworker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy("multiworker")
    with pytest.raises(ValueError, match="strategy"):
        make_strategy("tpu")


def test_multi_worker_patch_refuses_unverified_keras_versions():
    from spgnet_keras.training import MULTI_WORKER_VERIFIED_KERAS, check_keras_verified_for_multi_worker

    assert keras.__version__.rsplit(".", 1)[0] in MULTI_WORKER_VERIFIED_KERAS  # the installed one ran above
    for version in MULTI_WORKER_VERIFIED_KERAS:
        check_keras_verified_for_multi_worker(f"{version}.0")
    with pytest.raises(RuntimeError, match=r"verified on Keras 3\.13, 3\.14, 3\.15; this is Keras 3\.99\.0"):
        check_keras_verified_for_multi_worker("3.99.0")
    with pytest.raises(RuntimeError, match="this is Keras 3.8.1"):
        check_keras_verified_for_multi_worker("3.8.1")
