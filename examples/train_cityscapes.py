#!/usr/bin/env python
"""Trains SPGNet on Cityscapes with the paper's recipe (Sec 4.2), end to end.

    python examples/train_cityscapes.py --root /data/cityscapes --dry-run     # print the plan only
    python examples/train_cityscapes.py --root /data/cityscapes               # 80 x 1000 iterations
    python examples/train_cityscapes.py --root /data/cityscapes --backbone-weights resnet50.keras

The recipe is `spgnet_keras.config.experiment_config("cityscapes_paper")`: 2 x ResNet-50
SPGNet with decoder width 256 (Table 1), ImageNet-initialised encoders, batch 8 of
768x768 crops, random scale 0.5-2.0 (step 0.25) and flip, SGD (momentum 0.9, weight
decay 1e-4) with lr 0.01 and poly decay (power 0.9) over 80k iterations, cross-entropy
with OHEM (threshold 0.7, at least 12500 pixels per image) on every stage's output
(deep supervision, stage weight 0.4), ignore label 255. It runs through
`spgnet_keras.training.train(config)`: `MirroredStrategy` over all local GPUs, atomic
checkpoints, CSV/TensorBoard logs, and crash-resume (run the same command again).
After training the final model is evaluated on the validation split (full images;
`--eval-paper-scales --eval-flip` for the paper's multi-scale + flip test).

`--root` is the Cityscapes folder holding `leftImg8bit/` and `gtFine/` (default:
`$CITYSCAPES_DATASET`); the labels read are `*_gtFine_labelIds.png`, mapped to the 19
train ids. Options override single fields of the recipe (`--set section.key=value` any
field). A smoke run on a one-frame sample that has only a val split:

    python examples/train_cityscapes.py --root ../shared/data/cityscapes_sample \
        --train-split val --epochs 1 --steps 1 --batch-size 1 --crop 128 256 \
        --preset spgnet_r18x2_128 --decoder-channels 8 --backbone-weights none --out /tmp/smoke
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

EXPERIMENT = "cityscapes_paper"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=os.environ.get("CITYSCAPES_DATASET"),
                        help="Cityscapes root with leftImg8bit/ and gtFine/ (default: $CITYSCAPES_DATASET)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/cityscapes_paper)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (paper: 80)")
    parser.add_argument("--steps", type=int, default=None, help="iterations per epoch (paper: 1000)")
    parser.add_argument("--train-split", default=None, help="split to train on (default train; val for a smoke run)")
    parser.add_argument("--val-split", default=None, help="split to validate and evaluate on (default val)")
    parser.add_argument("--batch-size", type=int, default=None, help="global batch size (paper: 8)")
    parser.add_argument("--crop", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=None,
                        help="training crop (paper: 768 768)")
    parser.add_argument("--preset", default=None, help="model preset (paper: spgnet_r50x2_256; see spgnet_keras.PRESETS)")
    parser.add_argument("--decoder-channels", type=int, default=None, help="override the decoder width D")
    parser.add_argument("--backbone-weights", default="imagenet",
                        help="'imagenet' (keras-hub/keras-cv presets, needs network), a ResNetBackbone .keras "
                             "file, or 'none' (default imagenet)")
    parser.add_argument("--precision", default="auto",
                        choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"),
                        help="auto: mixed_float16 on GPUs, float32 otherwise")
    parser.add_argument("--strategy", default=None, choices=("auto", "default", "mirrored", "multiworker"),
                        help="tf.distribute strategy (default auto: MirroredStrategy over several local GPUs; "
                             "multiworker reads TF_CONFIG)")
    parser.add_argument("--val-max-images", type=int, default=None,
                        help="validate on the first N images of the val split after each epoch")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override any field of the config, e.g. --set loss.ohem_threshold=0.8")
    parser.add_argument("--eval-max-images", type=int, default=None, help="evaluate on the first N images only")
    parser.add_argument("--eval-paper-scales", action="store_true", help="evaluate at scales 0.75..2.0")
    parser.add_argument("--eval-flip", action="store_true", help="evaluate with horizontal flips")
    parser.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    parser.add_argument("--dry-run", action="store_true",
                        help="build the config, the model and the file lists, print the plan, do not train")
    args = parser.parse_args(argv)
    if args.root is None:
        parser.error("--root is required (or set CITYSCAPES_DATASET)")
    for name in ("epochs", "steps", "batch_size", "decoder_channels", "val_max_images", "eval_max_images"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    return args


def has_gpu():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def build_config(args):
    """`experiment_config("cityscapes_paper")` with the command line's overrides (type-checked)."""
    from spgnet_keras.config import apply_overrides, experiment_config

    config = experiment_config(EXPERIMENT)
    overrides = {"data": {"root": str(args.root)}, "model": {}, "run": {}}
    if args.train_split:
        overrides["data"]["train_split"] = args.train_split
    if args.val_split:
        overrides["data"]["val_split"] = args.val_split
    if args.batch_size:
        overrides["data"]["batch_size"] = args.batch_size
    if args.crop:
        overrides["data"]["crop_size"] = list(args.crop)
    if args.val_max_images:
        overrides["data"]["val_max_images"] = args.val_max_images
    if args.preset:
        overrides["model"]["preset"] = args.preset
    if args.decoder_channels:
        overrides["model"]["arguments"] = {**config.model.arguments, "decoder_channels": args.decoder_channels}
    weights = args.backbone_weights
    overrides["model"]["backbone_weights"] = None if weights.lower() in ("none", "") else weights
    if args.out:
        overrides["run"]["out_dir"] = str(args.out)
    if args.epochs:
        overrides["run"]["epochs"] = args.epochs
    if args.steps:
        overrides["run"]["steps_per_epoch"] = args.steps
    if args.strategy:
        overrides["run"]["strategy"] = args.strategy
    precision = args.precision
    if precision == "auto":
        precision = "mixed_float16" if has_gpu() else "float32"
    overrides["run"]["precision"] = precision
    apply_overrides(config, overrides, source="command line")
    if args.set:
        from spgnet_keras.cli.train_command import parse_assignments

        apply_overrides(config, parse_assignments(args.set), source="--set")
    return config


def check_backbone_weights(source):
    """A line describing where the encoder weights come from (ValueError for a missing file)."""
    if source is None:
        return "none (random initialisation)"
    if source == "imagenet":
        return "ImageNet (keras-hub / keras-cv presets, downloaded when training starts: needs network)"
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"Backbone weights file {path} does not exist.")
    return f"file {path}"


def describe(config, model, train_pairs, val_pairs, strategy):
    """The plan as printable lines."""
    data, run, loss, opt = config.data, config.run, config.loss, config.optimizer
    iterations = config.max_steps
    crops_seen = iterations * data.batch_size
    lines = [
        f"experiment     {EXPERIMENT} (paper Sec 4.2)",
        f"model          {config.model.preset} {config.model.arguments or ''}".rstrip()
        + f": backbones {model.stage_backbones}, decoder width {model.decoder_channels}, "
        f"{model.count_params():,} parameters, outputs {list(model.output.keys())}",
        f"encoders       {check_backbone_weights(config.model.backbone_weights)}",
        f"data           {data.dataset} at {data.root}: train split {data.train_split!r} "
        f"({len(train_pairs)} images), val split {data.val_split!r} ({len(val_pairs)} images"
        + (f", first {data.val_max_images} validated per epoch" if data.val_max_images else "") + ")",
        f"augmentation   scales {data.scales}, flip {data.flip}, crops {data.crop_size[0]}x{data.crop_size[1]}",
        f"batch          {data.batch_size} (global) on {strategy.num_replicas_in_sync} replica(s) "
        f"[{type(strategy).__name__}], precision {run.precision}",
        f"schedule       {run.epochs} epochs x {run.steps_per_epoch} iterations = {iterations:,} iterations "
        f"(~{crops_seen / max(1, len(train_pairs)):,.1f} crops per training image)",
        f"optimizer      SGD lr {opt.learning_rate}, momentum {opt.momentum}, weight decay {opt.weight_decay}, "
        f"poly power {opt.power}, warmup {opt.warmup_steps}",
        f"loss           cross-entropy on every output (stage weight {loss.stage_weight}), OHEM "
        + (f"threshold {loss.ohem_threshold}, min kept {loss.ohem_min_kept} per image"
           if loss.ohem_threshold is not None else "off"),
        f"output         {run.out_dir} (checkpoints/, history.csv, tensorboard/, backup/ for resume)",
    ]
    if data.train_split == data.val_split:
        lines.append(f"WARNING        training on the {data.train_split!r} split that is also validated on: "
                     "a smoke run, not an experiment")
    return lines


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from spgnet_keras.config import config_to_dict
    from spgnet_keras.data import CITYSCAPES_SPEC, LABEL_ID_TO_TRAIN_ID, cityscapes_files
    from spgnet_keras.training import build_model, make_strategy, train

    try:  # bad options, missing data or weights file: one clear line, before anything heavy
        config = build_config(args)
        train_pairs = cityscapes_files(config.data.root, config.data.train_split)
        val_pairs = cityscapes_files(config.data.root, config.data.val_split)
        check_backbone_weights(config.model.backbone_weights)
        strategy = make_strategy(config.run.strategy)
    except (ValueError, FileNotFoundError) as error:
        print(f"train_cityscapes.py: error: {error}", file=sys.stderr)
        return 2
    # The architecture only (train() loads the encoder weights; no "imagenet" download here).
    model = build_model(dataclasses.replace(config.model, backbone_weights=None), CITYSCAPES_SPEC.num_classes,
                        crop_size=config.data.crop_size)
    plan = describe(config, model, train_pairs, val_pairs, strategy)
    print("\n".join(plan), flush=True)
    if args.dry_run:
        print("\nconfig:", json.dumps(config_to_dict(config), indent=2))
        print("\ndry run: nothing trained.")
        return 0
    del model

    started = time.time()
    model, history, checkpoint = train(config)
    final = {key: round(float(values[-1]), 4) for key, values in history.items()}
    print(f"\ntrained in {time.time() - started:.0f} s; last epoch: {json.dumps(final)}")
    print(f"checkpoints: {checkpoint.latest_path}, {checkpoint.best_path} (best val mIoU)")
    if args.no_eval:
        return 0

    from spgnet_keras.evaluation import evaluate, format_table, to_json
    from spgnet_keras.inference import PAPER_SCALES

    scales = PAPER_SCALES if args.eval_paper_scales else (1.0,)
    print(f"\nevaluating on {min(len(val_pairs), args.eval_max_images or len(val_pairs))} {config.data.val_split} "
          f"images, scales {list(scales)}, flip {args.eval_flip}", flush=True)
    result = evaluate(model, val_pairs, class_names=CITYSCAPES_SPEC.class_names, label_map=LABEL_ID_TO_TRAIN_ID,
                      scales=scales, flip=args.eval_flip, max_images=args.eval_max_images)
    print(format_table(result))
    metrics = Path(config.run.out_dir) / "metrics.json"
    to_json(result, metrics)
    print(f"metrics: {metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
