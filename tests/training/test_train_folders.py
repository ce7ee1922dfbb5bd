"""`spgnet train` / `evaluate` / `predict` / `export` on a user's folders as they are, with no
config file: flags, their order with `--set`, the plan printed before training, the run folder's
record of the data, and the classes carried by the model."""

import json

import numpy as np
import pytest
from PIL import Image

from spgnet_keras.cli import main
from spgnet_keras.cli.train_command import add_parser, build_config
from tests.data.layouts import (
    COLOURS,
    NAMES,
    classes_csv,
    labels_of,
    suffixed_layout,
    voc_layout,
    write_image,
    write_mask,
)

TINY = ["--preset", "spgnet_r18x1_128", "--set", "model.arguments.decoder_channels=8", "--crop-size", "32", "48",
        "--batch-size", "2"]


def parse(*argv):
    import argparse

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *map(str, argv)])


def suffixed_args(root):
    return ["--images", root / "train" / "img", "--masks", root / "train" / "ann", "--mask-suffix", "_mask.png",
            "--val-images", root / "valid" / "img", "--val-masks", root / "valid" / "ann"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_flags_and_set_apply_in_command_line_order():
    assert build_config(parse("--epochs", 3, "--set", "run.epochs=5")).run.epochs == 5
    assert build_config(parse("--set", "run.epochs=5", "--epochs", 3)).run.epochs == 3
    config = build_config(parse("--set", "model.arguments.decoder_channels=8", "--crop-size", "64x96",
                                "--images", "x", "--label-map", "3:1,7:255"))
    assert config.model.arguments == {"decoder_channels": 8}  # camvid_cpu's 64, replaced, nothing else lost
    assert config.data.crop_size == [64, 96] and config.data.dataset == "folder" and config.data.images == "x"
    assert config.data.label_map == {"3": 1, "7": 255}
    assert config.run.out_dir == "runs/train"  # not the CamVid experiment's folder for a user's data
    config = build_config(parse("--set", "model.arguments.test_pooling=global"))
    assert config.model.arguments == {"decoder_channels": 64, "test_pooling": "global"}


def test_pairing_error_on_the_command_line_suggests_the_flag(tmp_path, capsys):
    root = suffixed_layout(tmp_path / "mydata")
    code, _, err = run(capsys, "train", "--images", root / "train" / "img", "--masks", root / "train" / "ann",
                       "--dry-run")
    assert code == 2 and "Traceback" not in err
    assert "All 6 masks in" in err and "end in '_mask.png': pass --mask-suffix _mask.png" in err


def test_dry_run_prints_model_classes_pairs_and_run_folder_and_writes_nothing(tmp_path, capsys):
    root = suffixed_layout(tmp_path / "mydata")
    classes = classes_csv(tmp_path / "classes.csv")
    code, out, err = run(capsys, "train", *suffixed_args(root), "--classes", classes, "--class-weights", "auto",
                         *TINY, "--out", tmp_path / "run", "--dry-run")
    assert code == 0, err
    assert "model: SPGNet resnet18, decoder 8, guidance spg, 4 classes (preset spgnet_r18x1_128" in out
    assert "classes: background, road, car, person" in out
    assert f"classes (classes file {classes})" in out
    assert "6 training pairs, 2 validation pairs" in out and f"validation: {root / 'valid' / 'img'}" in out
    assert "class weights (median frequency): background " in out
    assert f"run folder: {tmp_path / 'run'}" in out and "dry run: nothing was trained or written" in out
    assert not (tmp_path / "run").exists()


def test_dry_run_of_voc_lists_with_palette_masks(tmp_path, capsys):
    root = voc_layout(tmp_path / "VOC2012")
    lists = root / "ImageSets" / "Segmentation"
    code, out, err = run(capsys, "train", "--data", root, "--images", "JPEGImages", "--masks", "SegmentationClass",
                         "--train-list", lists / "train.txt", "--val-list", lists / "val.txt", *TINY, "--dry-run")
    assert code == 0, err
    assert "4 training pairs, 2 validation pairs" in out and f"validation: list {lists / 'val.txt'}" in out
    assert "4 classes (counted in the masks)" in out and "ignored (label 255) in train" in out


def test_reduce_zero_label_and_label_map_on_the_command_line(tmp_path, capsys):
    for index in range(4):  # ADE20K style: 0 = unlabelled, classes 1..3
        write_image(tmp_path / "images" / f"{index}.jpg", index)
        write_mask(tmp_path / "annotations" / f"{index}.png", labels_of(index))
    common = ["train", "--images", tmp_path / "images", "--masks", tmp_path / "annotations", "--val-fraction", "0.5",
              *TINY, "--dry-run"]
    code, out, err = run(capsys, *common, "--reduce-zero-label")
    assert code == 0, err
    assert "3 classes (counted in the masks)" in out and "masks: index, reduce_zero_label" in out
    assert "2 of 4 pairs held out: val_fraction 0.5, seed 0" in out
    code, out, err = run(capsys, *common, "--reduce-zero-label", "--label-map", '{"2": 255}')
    assert code == 0, err
    assert "2 classes (counted in the masks)" in out and 'label map "2": 255' in out
    code, _, err = run(capsys, *common, "--label-map", "3:x")
    assert code == 2 and "--label-map '3:x'" in err


@pytest.mark.slow
def test_train_evaluate_predict_export_on_folders_as_they_are(tmp_path, capsys):
    root = suffixed_layout(tmp_path / "mydata")
    classes = classes_csv(tmp_path / "classes.csv")
    out_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", *suffixed_args(root), "--classes", classes, *TINY, "--epochs", 1,
                         "--steps-per-epoch", 1, "--set", "run.verbose=0", "--out", out_dir)
    assert code == 0, err[-3000:]
    plan_end = out.index("run folder:")
    assert out.index("classes: background, road, car, person") < plan_end < out.index('"checkpoint"')

    record = json.loads((out_dir / "data.json").read_text())
    assert record["classes"]["names"] == NAMES and record["classes"]["palette"] == [list(c) for c in COLOURS]
    assert len(record["train"]) == 6 and len(record["val"]) == 2
    assert record["val"][0][1].endswith("valid/ann/valid_000_mask.png")
    assert record["mask_style"]["mask_format"] == "index"
    model_path = out_dir / "checkpoints" / "latest.keras"

    # evaluate: no data flags, the run's validation split and class names.
    code, out, err = run(capsys, "evaluate", "--model", model_path, "--json", tmp_path / "eval.json")
    assert code == 0, err
    assert "data from " + str(out_dir / "data.json") in err
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["num_images"] == 2 and list(result["per_class"]) == NAMES

    # predict: the model's own colours, no --palette.
    code, out, err = run(capsys, "predict", root / "valid" / "img", "--model", model_path, "--out", tmp_path / "pred")
    assert code == 0, err
    colours = np.asarray(Image.open(tmp_path / "pred" / "color" / "valid_000.png")).reshape(-1, 3)
    assert {tuple(c) for c in np.unique(colours, axis=0)} <= set(COLOURS)

    # export: the client sees the class names.
    code, out, err = run(capsys, "export", model_path, "--out", tmp_path / "export" / "spgnet" / "1")
    assert code == 0, err
    metadata = json.loads((tmp_path / "export" / "spgnet" / "1" / "assets.extra" / "spgnet_export.json").read_text())
    assert metadata["class_names"] == NAMES

    # The same command again: the run is kept, and the advice names this command's flags.
    code, out, err = run(capsys, "train", *suffixed_args(root), "--classes", classes, *TINY, "--epochs", 1,
                         "--steps-per-epoch", 1, "--out", out_dir)
    assert code == 0 and "already finished 1 epochs" in out and "--epochs 2" in out and "--out DIR" in out


README_PATCHES = [
    ('backbones=("resnet18", "resnet18"), decoder_channels=64', 'backbones=("resnet18",), decoder_channels=8'),
    ('batch_size=8, crop_size=(160, 224)', 'batch_size=2, crop_size=(32, 48)'),
    ('epochs=20, steps_per_epoch=46', 'epochs=1, steps_per_epoch=1, verbose=0'),
]


@pytest.mark.slow
def test_readme_your_own_data_block_runs(tmp_path, monkeypatch, capsys):
    import re

    from tests.training.conftest import REPO_ROOT

    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("## Your own data"):]
    section = section[:section.index("\n## ", 4)]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    for old, new in README_PATCHES:
        assert old in code, f"README changed: patch target {old!r} not found; update README_PATCHES"
        code = code.replace(old, new)
    suffixed_layout(tmp_path / "mydata")
    classes_csv(tmp_path / "classes.csv")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert "6 training pairs, 2 validation pairs" in capsys.readouterr().out
    assert namespace["model"].class_names == tuple(NAMES)
