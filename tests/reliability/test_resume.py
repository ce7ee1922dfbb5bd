"""kill -9 in the middle of an epoch, then the same command again: the run resumes from the
last backup and ends with the same weights as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from spgnet_keras.callbacks import AtomicCheckpoint, CheckpointWriteError, save_atomically
from spgnet_keras.data import write_synthetic_folder
from tests.helpers import tiny_run_config

EPOCHS, STEPS = 3, 4


def train_command(config, out_dir):
    return [sys.executable, "-m", "spgnet_keras.cli", "train", "--config", str(config),
            "--set", f"run.out_dir={out_dir}"]


def run_to_end(config, out_dir):
    result = subprocess.run(train_command(config, out_dir), capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def backup_epoch(out_dir):
    metadata = Path(out_dir) / "backup" / "training_metadata.json"
    try:
        return json.loads(metadata.read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    root = write_synthetic_folder(folder / "data", num_train=12, num_val=2, size=(64, 96), seed=3)
    path = folder / "config.yaml"
    path.write_text(tiny_run_config(root, EPOCHS, STEPS, val_max_images=2))
    return path


def test_kill_9_mid_epoch_then_resume_matches_uninterrupted_run(config_file, tmp_path):
    interrupted, reference = tmp_path / "interrupted", tmp_path / "reference"
    process = subprocess.Popen(train_command(config_file, interrupted), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300
    try:
        while backup_epoch(interrupted) < 1:  # epoch 1 done and backed up
            assert process.poll() is None, process.stderr.read()[-3000:]
            assert time.time() < deadline, "no backup appeared"
            time.sleep(0.05)
        time.sleep(0.6)  # into the middle of epoch 2
        assert process.poll() is None, "training ended before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    killed_at = backup_epoch(interrupted)
    assert killed_at in (1, 2)

    resumed = run_to_end(config_file, interrupted)
    assert f"Epoch {killed_at + 1}/{EPOCHS}" in resumed.stdout + resumed.stderr
    assert f"Epoch 1/{EPOCHS}" not in resumed.stdout + resumed.stderr
    run_to_end(config_file, reference)

    a = keras.saving.load_model(interrupted / "checkpoints" / "latest.keras", safe_mode=True)
    b = keras.saving.load_model(reference / "checkpoints" / "latest.keras", safe_mode=True)
    assert int(a.optimizer.iterations) == int(b.optimizer.iterations) == EPOCHS * STEPS
    difference = max(float(np.max(np.abs(x - y))) for x, y in zip(a.get_weights(), b.get_weights()))
    print(f"max weight difference resumed vs uninterrupted: {difference:.3g}")
    assert difference < 1e-4


def small_model():
    inputs = keras.Input((4, 4, 3))
    return keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))


def test_failed_checkpoint_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model = small_model()
    callback = AtomicCheckpoint(tmp_path)
    callback.set_model(model)
    callback.on_epoch_end(0, {"loss": 1.0})
    good = callback.latest_path.read_bytes()

    def disk_full(path, *args, **kwargs):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model, "save", disk_full)
    with pytest.raises(CheckpointWriteError, match="No space left on device.*previous latest.keras is intact"):
        callback.on_epoch_end(1, {"loss": 0.5})
    assert callback.latest_path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.keras"]
    keras.saving.load_model(callback.latest_path, safe_mode=True)


def test_no_checkpoint_after_a_non_finite_loss(tmp_path):
    model = small_model()
    callback = AtomicCheckpoint(tmp_path)
    callback.set_model(model)
    callback.on_epoch_end(0, {"loss": float("nan")})
    assert not callback.latest_path.exists()
    save_atomically(model, tmp_path / "x.keras")
    assert (tmp_path / "x.keras").is_file()


def test_rerunning_a_finished_run_keeps_it_and_more_epochs_continue_it(config_file, tmp_path):
    out = tmp_path / "run"
    run_to_end(config_file, out)
    checkpoints = out / "checkpoints"
    latest, best = (checkpoints / "latest.keras").read_bytes(), (checkpoints / "best.keras").read_bytes()
    best_score = json.loads((checkpoints / "best.json").read_text())["value"]
    assert json.loads((out / "finished.json").read_text())["epochs"] == EPOCHS

    again = run_to_end(config_file, out)  # used to restart at epoch 0 and replace both files
    assert f"already finished {EPOCHS} epochs" in again.stdout
    assert "Epoch 1/" not in again.stdout + again.stderr
    assert (checkpoints / "latest.keras").read_bytes() == latest
    assert (checkpoints / "best.keras").read_bytes() == best

    longer = subprocess.run(train_command(config_file, out) + ["--set", f"run.epochs={EPOCHS + 1}"],
                            capture_output=True, text=True, timeout=400)
    assert longer.returncode == 0, longer.stderr[-3000:]
    log = longer.stdout + longer.stderr
    assert f"Epoch {EPOCHS + 1}/{EPOCHS + 1}" in log and "Epoch 1/" not in log
    model = keras.saving.load_model(checkpoints / "latest.keras", safe_mode=True)
    assert int(model.optimizer.iterations) == (EPOCHS + 1) * STEPS
    record = json.loads((checkpoints / "best.json").read_text())
    if record["value"] == best_score:  # the extra epoch was not better: best.keras untouched
        assert (checkpoints / "best.keras").read_bytes() == best
    else:
        assert record["value"] > best_score and record["epoch"] == EPOCHS + 1
