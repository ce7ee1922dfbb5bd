"""Reliability, third round: read-only storage, made read-only in a way that stops root too
(a read-only bind mount in a private mount namespace, `unshare`), the way a read-only
network share or a container volume does. Every command that writes into it stops with one
line naming the file and the cause, exit 2, and leaves what was there intact and loadable."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from spgnet_keras.cli import main
from spgnet_keras.data import write_synthetic_folder
from spgnet_keras.models.weights import read_saved_model
from tests.helpers import tiny_run_config

SCRIPT = Path(__file__).resolve().parent / "scripts" / "run_commands.py"


def read_only_prefix(folder):
    """The command prefix that runs a command with `folder` mounted read-only (root included)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("`unshare` (util-linux) is needed to make a folder read-only for root")
    namespaces = ["--mount"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--mount"]
    remount = f"mount --bind '{folder}' '{folder}' && mount -o remount,ro,bind '{folder}' && exec \"$@\""
    return [unshare, *namespaces, "sh", "-c", remount, "sh"]


def file_digests(folder):
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(Path(folder).rglob("*")) if path.is_file()}


def test_every_writing_command_on_read_only_storage_is_one_line_and_keeps_what_was_there(tmp_path):
    data = write_synthetic_folder(tmp_path / "data", num_train=2, num_val=1, size=(64, 96), seed=3)
    storage = tmp_path / "storage"
    run_dir, serving = storage / "run", storage / "serving" / "spgnet"
    config = tmp_path / "config.yaml"
    config.write_text(tiny_run_config(data, epochs=1, steps=1))
    assert main(["train", "--config", str(config), "--set", f"run.out_dir={run_dir}", "--no-report"]) == 0
    checkpoint = run_dir / "checkpoints" / "best.keras"
    if not checkpoint.exists():
        checkpoint = next((run_dir / "checkpoints").glob("*.keras"))
    assert main(["export", str(checkpoint), "--out", str(serving / "1")]) == 0
    before = file_digests(storage)

    images = str(data / "val" / "images")
    commands = {
        "continue the run": ["train", "--config", str(config), "--set", f"run.out_dir={run_dir}",
                             "--set", "run.epochs=2", "--no-report"],
        "a new run": ["train", "--config", str(config), "--set", f"run.out_dir={storage / 'run2'}", "--no-report"],
        "a new export version": ["export", str(checkpoint), "--out", str(serving / "2")],
        "replace the export": ["export", str(checkpoint), "--out", str(serving / "1"), "--overwrite"],
        "predict": ["predict", "--model", str(checkpoint), images, "--out", str(storage / "predictions")],
        "evaluate --predictions": ["evaluate", "--model", str(checkpoint), "--data", str(data),
                                   "--predictions", str(storage / "eval")],
        "evaluate --report": ["evaluate", "--model", str(checkpoint), "--data", str(data),
                              "--report", str(storage / "report")],
    }
    listing = tmp_path / "commands.json"
    listing.write_text(json.dumps(list(commands.values())))
    completed = subprocess.run([*read_only_prefix(storage), sys.executable, str(SCRIPT), str(listing)],
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])

    for what, result in zip(commands, results):
        command = result["argv"][0]
        errors = [line for line in result["stderr"].splitlines() if line.startswith(f"spgnet {command}: error:")]
        assert result["code"] == 2, (what, result)
        assert len(errors) == 1 and "Traceback" not in result["stderr"], (what, result["stderr"][-2000:])
        assert "Read-only file system" in errors[0] and str(storage) in errors[0], (what, errors[0])
    assert file_digests(storage) == before  # nothing written, nothing replaced, nothing removed
    assert read_saved_model(checkpoint).count_params() > 0
    assert "serving_default" in tf.saved_model.load(str(serving / "1")).signatures
