"""Trains 2xResNet-18 SPGNet on CamVid train for a fixed budget and evaluates val mIoU.

The `camvid_cpu` experiment (2xR18, decoder D=64, crops 160x224, batch 8, SGD lr 0.02
with poly decay and coupled weight decay 1e-4, deep supervision weight 1.0, random scale 0.5-2.0 + flip) run through
`spgnet_keras.training.train` with encoders initialised at random (ImageNet weights are
not reachable offline). Each epoch ends with a validation pass over the full val images
(`val_prediction_miou`); after training, `spgnet_keras.evaluation.evaluate` scores the
final model on the full val images (single scale, no flip) for both outputs (`prediction`
and the first stage's `stage1`).

Writes to `--out` (default `runs/camvid_benchmark`): `model.keras` (final model),
`checkpoints/` (latest/best), `history.csv` / `history.json` (per-epoch loss and
val mIoU), `evaluation.json` (per-class IoU), `learning_curve.png` and
`predictions.png` (val image / label / prediction). The two figures are also copied to
`benchmarks/results/` and linked from docs/benchmarks.md.

Examples::

    python benchmarks/train_camvid.py                       # default: 8 x 46 steps, ~12-15 min on 2 idle cores
    python benchmarks/train_camvid.py --epochs 20 --steps-per-epoch 46 --out runs/camvid_long
    python benchmarks/train_camvid.py --quick               # 2 epochs x 5 steps, 10 val images
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.setup_tensorflow_logging()

import numpy as np  # noqa: E402

from spgnet_keras.config import experiment_config  # noqa: E402
from spgnet_keras.data import dataset_spec  # noqa: E402
from spgnet_keras.evaluation import dataset_pairs, evaluate  # noqa: E402
from spgnet_keras.training import train  # noqa: E402


def learning_curve_figure(history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(epochs, history["loss"], "-o", ms=3, label="train loss (total)")
    if "val_loss" in history:
        left.plot(epochs, history["val_loss"], "--o", ms=3, label="val loss (total)")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.grid(alpha=0.3)
    left.legend()
    key = "val_prediction_miou"
    if key in history:
        right.plot(epochs, 100 * np.asarray(history[key]), "-o", ms=3, color="C2", label="val mIoU (prediction)")
    if "prediction_miou" in history:
        right.plot(epochs, 100 * np.asarray(history["prediction_miou"]), "--", color="C2", alpha=0.6,
                   label="train-crop mIoU (running)")
    right.set_xlabel("epoch")
    right.set_ylabel("mIoU (%)")
    right.grid(alpha=0.3)
    right.legend()
    figure.suptitle("SPGNet 2xR18 (D=64) on CamVid, from scratch")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def predictions_figure(model, pairs, palette, path, count=3):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spgnet_keras.data import load_image, load_label
    from spgnet_keras.inference import predict
    from spgnet_keras.visualization import colorize

    chosen = [pairs[i] for i in np.linspace(0, len(pairs) - 1, count).astype(int)]
    figure, axes = plt.subplots(count, 3, figsize=(9, 2.4 * count), squeeze=False)
    for row, (image_path, label_path) in enumerate(chosen):
        image = load_image(image_path)
        label = load_label(label_path)
        prediction = predict(model, image)
        for axis, picture, title in zip(axes[row], (image, colorize(label, palette), colorize(prediction, palette)),
                                        ("image", "label", "prediction")):
            axis.imshow(picture)
            axis.set_axis_off()
            if row == 0:
                axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="runs/camvid_benchmark")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps-per-epoch", type=int, default=46, help="46 = one pass over the 367 train images")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", default="160x224")
    parser.add_argument("--decoder-channels", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-max-images", type=int, default=None, help="validate on the first N val images")
    parser.add_argument("--budget", type=float, default=None,
                        help="minutes the run is expected to take; only checked (a warning when exceeded): the "
                             "budget itself is --epochs x --steps-per-epoch, fixed so that runs are comparable")
    parser.add_argument("--quick", action="store_true", help="2 epochs x 5 steps, 10 val images, no doc section")
    parser.add_argument("--overwrite", action="store_true", help="delete --out first if it exists")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--section", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.steps_per_epoch, args.val_max_images = 2, 5, 10
        if args.out == "runs/camvid_benchmark":
            args.out = "runs/camvid_benchmark_quick"
    out = Path(args.out)
    if not out.is_absolute():
        out = _common.REPO / out
    if out.exists() and any(out.iterdir()):
        if not args.overwrite:
            parser.error(f"{out} exists and is not empty (BackupAndRestore would resume from it); "
                         "pass --overwrite or another --out")
        shutil.rmtree(out)
    section = args.section or ("train-camvid-quick" if args.quick else "train-camvid")

    machine = _common.Machine()
    root = _common.camvid_root(args.data_root)
    config = experiment_config("camvid_cpu")
    config.data.root = str(root)
    config.data.crop_size = [int(v) for v in args.crop.lower().split("x")]
    config.data.batch_size = args.batch_size
    config.data.val_max_images = args.val_max_images
    config.model.arguments = {"decoder_channels": args.decoder_channels}
    config.optimizer.learning_rate = args.learning_rate
    config.run.out_dir = str(out)
    config.run.epochs = args.epochs
    config.run.steps_per_epoch = args.steps_per_epoch
    config.run.seed = args.seed
    config.run.verbose = 2

    start = time.perf_counter()
    model, history, checkpoint = train(config)
    train_seconds = time.perf_counter() - start
    machine.sample_load()

    spec = dataset_spec("camvid", root)
    pairs = dataset_pairs("camvid", root, "val")
    if args.val_max_images:
        pairs = pairs[: args.val_max_images]
    start = time.perf_counter()
    results = {output: evaluate(model, pairs, num_classes=spec.num_classes, class_names=spec.class_names,
                                output=output) for output in model.output.keys()}
    eval_seconds = time.perf_counter() - start
    model.save(out / "model.keras")
    machine.finish()

    history = {k: [float(v) for v in values] for k, values in history.items()}
    (out / "history.json").write_text(json.dumps(history, indent=2))
    (out / "evaluation.json").write_text(json.dumps({k: r.to_dict() for k, r in results.items()}, indent=2,
                                                    default=str))
    learning_curve_figure(history, out / "learning_curve.png")
    predictions_figure(model, pairs, spec.palette, out / "predictions.png")
    results_dir = _common.RESULTS / ("camvid_quick" if args.quick else "camvid")
    results_dir.mkdir(parents=True, exist_ok=True)
    for name in ("learning_curve.png", "predictions.png", "history.json", "evaluation.json"):
        shutil.copy(out / name, results_dir / name)

    final = results["prediction"]
    steps = args.epochs * args.steps_per_epoch
    lines = [
        f"## CamVid training run (2xR18 SPGNet, D={args.decoder_channels}, from scratch)", "",
        machine.markdown(), "",
        f"- Budget: {args.epochs} epochs x {args.steps_per_epoch} steps = {steps} steps of batch {args.batch_size} "
        f"({steps * args.batch_size / 367:.1f} passes over the 367 train images), crops {args.crop}, SGD lr "
        f"{args.learning_rate} poly 0.9, coupled weight decay {config.optimizer.weight_decay:g} on all variables, "
        f"deep supervision weight {config.loss.stage_weight:g} (plain sum), no OHEM, random encoder init, seed {args.seed}",
        f"- Training (incl. per-epoch validation): {train_seconds / 60:.1f} min "
        f"({train_seconds / steps:.2f} s per step incl. validation); final evaluation {eval_seconds:.0f} s",
        f"- Output folder: `{_relative(out)}` (model.keras, checkpoints/, history.csv, evaluation.json, figures)",
        f"- **Val mIoU (full {len(pairs)} val images, single scale): {100 * final.miou:.2f} %** "
        f"(pixel accuracy {100 * final.pixel_accuracy:.2f} %); first-stage output `stage1`: "
        f"{100 * results['stage1'].miou:.2f} %" if "stage1" in results else "",
        "- Context: published CamVid numbers (11 classes, ImageNet-pretrained encoders, hundreds of epochs) are "
        "in the 60-70 % range; a from-scratch run of a few minutes on 2 CPU cores is far from converged.",
        "",
        "Learning curve (per epoch; val = full val images through `fit`'s validation):", "",
        "| Epoch | Train loss | Val loss | Val mIoU (%) |", "|---:|---:|---:|---:|",
    ]
    for epoch in range(len(history["loss"])):
        val_loss = history.get("val_loss", [float("nan")] * (epoch + 1))[epoch]
        val_miou = history.get("val_prediction_miou", [float("nan")] * (epoch + 1))[epoch]
        lines.append(f"| {epoch + 1} | {history['loss'][epoch]:.3f} | {val_loss:.3f} | {100 * val_miou:.2f} |")
    if "val_prediction_miou" in history:
        last = history["val_prediction_miou"][-1]
        agree = "agree" if abs(last - final.miou) < 5e-4 else "DIFFER"
        best = int(np.argmax(history["val_prediction_miou"]))
        lines += ["", f"Check: the last epoch's `val_prediction_miou` ({100 * last:.2f} %) and `evaluate()` on the "
                  f"same images ({100 * final.miou:.2f} %) {agree} (same model, same padding to a multiple of 32, "
                  "label 255 ignored).",
                  f"Best epoch: {best + 1} ({100 * history['val_prediction_miou'][best]:.2f} %), kept as "
                  f"`checkpoints/best.keras`; the curve is not converged and moves by several points between "
                  f"epochs at this budget."]
    lines += ["", "Per-class IoU (final model, `prediction`):", "",
              "| " + " | ".join(final.class_names) + " |", "|" + "---:|" * len(final.class_names),
              "| " + " | ".join(f"{100 * v:.1f}" for v in final.iou) + " |", ""]
    rel = "../benchmarks/results/" + results_dir.name
    lines += [f"![learning curve]({rel}/learning_curve.png)", "", f"![val predictions]({rel}/predictions.png)", ""]
    markdown = "\n".join(line for line in lines if line is not None)
    print(markdown)
    if args.budget and train_seconds / 60 > args.budget:
        print(f"warning: training took {train_seconds / 60:.1f} min, over the {args.budget} min budget")
    if not args.no_doc:
        _common.write_section(section, markdown)


def _relative(path):
    try:
        return str(Path(path).resolve().relative_to(_common.REPO))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    main()
