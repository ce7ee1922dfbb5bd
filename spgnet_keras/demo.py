"""The main job: train, evaluate, export and visualise SPGNet in a few minutes on a CPU.

With no dataset given it writes SYNTHETIC street scenes (procedural sky, buildings, road,
sidewalk, cars, poles, people, vegetation; see `spgnet_keras.data.synthetic`) into the
output folder and trains on those; `data_root` switches to a real dataset (CamVid,
Cityscapes or image/mask folders).
"""

import json
import time
from pathlib import Path

import numpy as np

from spgnet_keras.config import experiment_config
from spgnet_keras.errors import InvalidInputError

DEMO_SIZE = (128, 192)
DEMO_TRAIN_IMAGES = 160
DEMO_VAL_IMAGES = 32
ATTENTION_CLASSES = {"synthetic": ("car", "person", "building", "pole"),
                     "camvid": ("Car", "Pedestrian", "Building", "Pole"),
                     "cityscapes": ("car", "person", "building", "pole")}


def demo_config(out_dir, dataset="synthetic", data_root=None, epochs=None, steps_per_epoch=None):
    """The demo's `ExperimentConfig`: synthetic scenes, or the CamVid CPU recipe for real data."""
    config = experiment_config("synthetic_demo" if dataset == "synthetic" else "camvid_cpu")
    config.data.dataset = dataset
    config.data.root = str(data_root) if data_root is not None else str(Path(out_dir) / "data")
    config.run.out_dir = str(out_dir)
    for value, option in ((epochs, "--epochs"), (steps_per_epoch, "--steps-per-epoch")):
        if value is not None and value < 1:
            raise InvalidInputError(f"{option} must be a positive integer, got {value}.")
    config.run.epochs = config.run.epochs if epochs is None else epochs
    config.run.steps_per_epoch = config.run.steps_per_epoch if steps_per_epoch is None else steps_per_epoch
    if dataset == "cityscapes":
        config.data.crop_size = [512, 1024]
    return config


def run_demo(out_dir="runs/demo", dataset="synthetic", data_root=None, epochs=None, steps_per_epoch=None,
             num_train=DEMO_TRAIN_IMAGES, num_val=DEMO_VAL_IMAGES, log=print, config=None):
    """Runs the whole job and returns a summary dict (also written to `summary.json`).

    `config` (an `ExperimentConfig`, e.g. your folders from `spgnet demo --images DIR --masks
    DIR`) replaces the one `demo_config` builds from the other arguments.
    """
    from spgnet_keras.data import write_synthetic_folder
    from spgnet_keras.data.sources import DATA_RECORD, read_data_record
    from spgnet_keras.evaluation import evaluate_data, format_table, to_json
    from spgnet_keras.export import export_saved_model
    from spgnet_keras.inference import load_model
    from spgnet_keras.training import RunFinished, train

    for value, option in ((num_train, "--synthetic-train"), (num_val, "--synthetic-val")):
        if value < 1:
            raise InvalidInputError(f"{option} must be a positive integer, got {value}.")
    started = time.time()
    if config is None:
        config = demo_config(out_dir, dataset, data_root, epochs, steps_per_epoch)
    out_dir = Path(config.run.out_dir)
    if config.data.dataset == "synthetic" and data_root is None and config.data.root == str(out_dir / "data"):
        log(f"[1/5] Writing {num_train}+{num_val} SYNTHETIC street scenes to {out_dir / 'data'}")
        write_synthetic_folder(out_dir / "data", num_train=num_train, num_val=num_val, size=DEMO_SIZE, seed=0)
    log(f"[2/5] Training {config.model.preset} {config.model.arguments} for "
        f"{config.run.epochs} x {config.run.steps_per_epoch} steps")
    try:
        model, _, checkpoint = train(config, log=lambda line: log(f"      {line}"))
        checkpoint_path = checkpoint.latest_path
    except RunFinished as finished:  # the demo ran here before: its checkpoints are kept
        checkpoint_path = out_dir / "checkpoints" / "latest.keras"
        log(f"      {finished} Using {checkpoint_path}.")
        model = load_model(checkpoint_path)
    log(f"[3/5] Evaluating on the validation split (full images, as recorded in {out_dir / DATA_RECORD})")
    data, _ = read_data_record(out_dir / DATA_RECORD)
    result = evaluate_data(model, data)
    log(format_table(result))
    to_json(result, out_dir / "metrics.json")
    log("[4/5] Exporting a TF Serving SavedModel")
    export_dir = out_dir / "export" / "spgnet" / "1"
    export_saved_model(model, export_dir, overwrite=True)
    log("[5/5] Writing prediction overlays and the guided-attention figure")
    figures = write_figures(model, data.val_pairs, config.data.dataset, out_dir)
    from spgnet_keras.visualization import write_report

    report = write_report(result, out_dir / "report", model=model, data=data, run_dir=out_dir)
    log(f"      report: {report}")
    summary = {
        "dataset": config.data.dataset,
        "synthetic": config.data.dataset == "synthetic",
        "val_miou": result.miou,
        "val_pixel_accuracy": result.pixel_accuracy,
        "checkpoint": str(checkpoint_path),
        "saved_model": str(export_dir),
        "figures": [str(f) for f in figures],
        "report": str(report),
        "seconds": round(time.time() - started, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    log(json.dumps(summary, indent=2))
    return summary


def write_figures(model, val_pairs, dataset, out_dir, num_images=3):
    """Overlays of a few validation images and the Sec 4.5 guided-attention figure, in the
    model's own class names and colours."""
    from spgnet_keras.classes import default_class_names, default_palette
    from spgnet_keras.data import load_image
    from spgnet_keras.inference import predict
    from spgnet_keras.visualization import (
        TOP_K,
        attention_figure,
        guided_attention_maps,
        overlay_figure,
        plot_training_curves,
        save_figure,
    )

    class_names = model.class_names or default_class_names(model.num_classes)
    palette = np.asarray(model.palette if model.palette is not None else default_palette(model.num_classes), np.uint8)
    figures_dir = Path(out_dir) / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    images, maps, predictions, written = [], [], [], []
    wanted = [c for c in ATTENTION_CLASSES.get(dataset, ()) if c in class_names]
    classes = wanted or list(class_names[:4])
    attention = model.guidance == "spg" and len(model.stage_backbones) > 1 and model.decoder_channels >= TOP_K
    for index, (image_path, _) in enumerate(val_pairs[:num_images]):
        image = load_image(image_path)
        prediction = predict(model, image)
        path = figures_dir / f"overlay_{index}.png"  # image | overlay, enlarged, with a legend
        written.append(save_figure(overlay_figure(image, prediction, palette, class_names), path, dpi=100))
        images.append(image)
        predictions.append(prediction)
        if attention:
            maps.append(guided_attention_maps(model, image, classes, class_names=class_names))
    if maps:
        figure = attention_figure(images, maps, classes, predictions=predictions, palette=palette)
        written.append(save_figure(figure, figures_dir / "guided_attention.png"))
    history = Path(out_dir) / "history.csv"
    if history.is_file():
        written.append(save_figure(plot_training_curves(history), figures_dir / "training_curves.png"))
    return written
