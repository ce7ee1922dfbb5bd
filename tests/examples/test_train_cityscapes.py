"""examples/train_cityscapes.py on the real one-frame Cityscapes sample (val split only)."""

import csv
import json
import subprocess
import sys

import pytest

from tests.examples.example_helpers import EXAMPLES, REPOSITORY, example_environment

SCRIPT = EXAMPLES / "train_cityscapes.py"
TINY_MODEL = ["--preset", "spgnet_r18x2_128", "--decoder-channels", "8", "--backbone-weights", "none"]


def run_script(tmp_path, *args, timeout=900):
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        cwd=REPOSITORY, env=example_environment(tmp_path), capture_output=True, text=True, timeout=timeout,
    )
    return completed


def check(completed):
    assert completed.returncode == 0, f"exit {completed.returncode}\nstdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    return completed.stdout


def test_dry_run_prints_the_paper_plan(cityscapes_root, tmp_path):
    out = tmp_path / "run"
    stdout = check(run_script(tmp_path, "--root", cityscapes_root, "--train-split", "val", "--out", out, "--dry-run"))
    assert "spgnet_r50x2_256" in stdout and "backbones ('resnet50', 'resnet50'), decoder width 256" in stdout
    assert "80 epochs x 1000 iterations = 80,000 iterations" in stdout
    assert "crops 768x768" in stdout and "OHEM threshold 0.7, min kept 12500" in stdout
    assert "train split 'val' (1 images)" in stdout and "WARNING" in stdout
    assert "ImageNet" in stdout
    config = json.loads(stdout.split("config:", 1)[1].split("\ndry run:", 1)[0])
    assert config["data"]["dataset"] == "cityscapes" and config["data"]["train_split"] == "val"
    assert config["optimizer"]["learning_rate"] == 0.01 and config["data"]["batch_size"] == 8
    assert "dry run: nothing trained." in stdout
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--dry-run"], "Cityscapes folder not found"),  # the sample has no train split
    (["--train-split", "val", "--dry-run", "--set", "run.epoch=3"], "unknown key run.epoch"),
    (["--train-split", "val", "--dry-run", "--backbone-weights", "missing.keras"], "missing.keras does not exist"),
])
def test_bad_setups_fail_with_one_clear_line(cityscapes_root, tmp_path, args, message):
    completed = run_script(tmp_path, "--root", cityscapes_root, "--out", tmp_path / "run", *args)
    assert completed.returncode == 2, completed.stderr
    assert message in completed.stderr and "Traceback" not in completed.stderr


@pytest.mark.slow
def test_one_step_smoke_run(cityscapes_root, tmp_path):
    out = tmp_path / "run"
    stdout = check(run_script(
        tmp_path, "--root", cityscapes_root, "--train-split", "val", "--epochs", "1", "--steps", "1",
        "--batch-size", "1", "--crop", "128", "256", "--val-max-images", "1", "--out", out, *TINY_MODEL,
    ))
    assert "decoder width 8" in stdout and "1 epochs x 1 iterations" in stdout
    assert (out / "checkpoints" / "latest.keras").is_file()
    with (out / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and "val_prediction_miou" in rows[0]
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["train_split"] == "val" and config["model"]["arguments"] == {"decoder_channels": 8}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 1 and len(metrics["class_names"]) == 19
    assert "mIoU" in stdout
