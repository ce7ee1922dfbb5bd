"""Faults while a run writes (issue "reliability, third round"), each made in a subprocess:
a full disk (file-size limit) and a SIGTERM at the backup write, two runs on one folder, a
continuation refused for another model, and configs refused before the folder exists.
Each test asserts that what the user had is still there and that the next run resumes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spgnet_keras.config import ExperimentConfig, apply_overrides, load_config
from spgnet_keras.data import write_synthetic_folder
from spgnet_keras.run_folder import LOCK_FILE
from tests.helpers import tiny_run_config

SCRIPTS = Path(__file__).resolve().parent / "scripts"
EPOCHS, STEPS = 3, 2


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_synthetic_folder(tmp_path_factory.mktemp("faults") / "data", num_train=6, num_val=1,
                                  size=(64, 96), seed=5)


def config_file(folder, data_root, width=8, epochs=EPOCHS):
    path = Path(folder) / f"config-{width}-{epochs}.yaml"
    path.write_text(tiny_run_config(data_root, epochs, STEPS, width=width))
    return path


def train(config, out_dir, fault=None, extra=(), timeout=400):
    prefix = [sys.executable, str(SCRIPTS / "faulty_train.py"), fault] if fault else [
        sys.executable, "-m", "spgnet_keras.cli"]
    command = prefix + ["train", "--config", str(config), "--set", f"run.out_dir={out_dir}", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def backup_record(out_dir):
    return json.loads((Path(out_dir) / "backup" / "training_metadata.json").read_text())


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("spgnet train: error:")]


def resumed_at_epoch_2(result):
    log = result.stdout + result.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Epoch 2/{EPOCHS}" in log and f"Epoch 1/{EPOCHS}" not in log, log[-3000:]
    return log


def test_full_disk_at_the_backup_write_keeps_the_last_backup_and_the_next_run_resumes(tmp_path, data_root):
    config, out = config_file(tmp_path, data_root), tmp_path / "run"
    failed = train(config, out, fault="fsize")
    assert failed.returncode == 2, failed.stderr[-3000:]
    (message,) = error_lines(failed)
    assert "Could not write the backup" in message and "File too large" in message, message
    assert "the previous backup (epoch-00001.keras, epoch 1) is intact" in message
    assert "Traceback" not in failed.stderr
    assert backup_record(out) == {"epoch": 1, "weights": "epoch-00001.keras"}
    assert sorted(p.name for p in (out / "backup").iterdir()) == ["epoch-00001.keras", "training_metadata.json"]

    resumed_at_epoch_2(train(config, out))
    assert json.loads((out / "finished.json").read_text())["epochs"] == EPOCHS
    assert not (out / "backup").exists()


def test_sigterm_at_the_backup_write_then_another_model_is_refused_and_the_same_one_resumes(tmp_path, data_root):
    config, out = config_file(tmp_path, data_root), tmp_path / "run"
    killed = train(config, out, fault="sigterm")
    assert killed.returncode == -signal.SIGTERM, killed.stderr[-3000:]
    half_written = out / "backup" / ".tmp-epoch-00002.keras"
    assert half_written.is_file()
    assert backup_record(out)["epoch"] == 1
    recorded = {name: (out / name).read_bytes() for name in ("config.json", "data.json")}

    wider = train(config_file(tmp_path, data_root, width=16), out)
    assert wider.returncode == 2, wider.stderr[-3000:]
    (message,) = error_lines(wider)
    assert "does not load into the model this configuration builds" in message, message
    assert "Nothing in the folder was changed" in message
    assert {name: (out / name).read_bytes() for name in recorded} == recorded
    assert backup_record(out)["epoch"] == 1

    log = resumed_at_epoch_2(train(config, out))
    assert f"removed {half_written}, left by a backup write that did not finish" in log
    assert "resuming: epoch 2 from the backup" in log


def test_a_second_run_on_the_same_folder_is_refused_and_a_killed_run_leaves_no_stuck_lock(tmp_path, data_root):
    config, out = config_file(tmp_path, data_root, epochs=50), tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "spgnet_keras.cli", "train", "--config", str(config),
                              "--set", f"run.out_dir={out}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not (out / "config.json").is_file():  # the first run holds the lock and has started
            assert first.poll() is None, first.stderr.read()[-3000:]
            assert time.time() < deadline
            time.sleep(0.1)
        second = train(config, out)
        assert second.returncode == 2, second.stderr[-3000:]
        (message,) = error_lines(second)
        assert f"{out} is in use by another spgnet train (pid {first.pid} on " in message, message
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert (out / LOCK_FILE).is_file()
    after_kill = train(config_file(tmp_path, data_root, epochs=1), out)
    assert after_kill.returncode == 0, after_kill.stderr[-3000:]


def run_files(out):
    """Every file of a run folder and its bytes (the lock, which names the last process, aside)."""
    return {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file() and path.name != LOCK_FILE}


def test_continuing_with_another_model_changes_nothing(tmp_path, data_root):
    out = tmp_path / "run"
    assert train(config_file(tmp_path, data_root, epochs=1), out).returncode == 0
    before = run_files(out)
    refused = train(config_file(tmp_path, data_root, width=16, epochs=2), out)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr
    assert run_files(out) == before


def test_refused_runs_leave_no_run_folder(tmp_path, data_root):
    config = config_file(tmp_path, data_root)
    bad_value = train(config, tmp_path / "a", extra=["--set", "optimizer.learning_rate=fast"])
    assert bad_value.returncode == 2 and "learning_rate" in bad_value.stderr
    missing_data = train(config, tmp_path / "b", extra=["--set", f"data.root={tmp_path / 'nowhere'}"])
    assert missing_data.returncode == 2 and "nowhere" in missing_data.stderr, missing_data.stderr[-2000:]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_yaml_float_without_a_dot_and_home_in_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / "c.yaml"
    path.write_text("optimizer: {learning_rate: 1e-3}\nrun: {out_dir: ~/runs/x}\ndata: {root: ~/data}\n")
    config = load_config(path)
    assert config.optimizer.learning_rate == 0.001
    assert config.run.out_dir == str(tmp_path / "runs" / "x") and config.data.root == str(tmp_path / "data")
    with pytest.raises(ValueError, match="learning_rate must be of type float, got 'fast'"):
        apply_overrides(ExperimentConfig(), {"optimizer": {"learning_rate": "fast"}})
