"""Test-time pooling on CamVid val: "global" against "crop" (In-Place ABN), single and multi-scale.

SPGNet's decoder (and the SE transition) pool globally in training. At test time
`test_pooling="global"` pools globally too; `"crop"` averages over a window the size of
the training crop's feature map (`spgnet_keras.layers.pooling`), as the In-Place ABN code
the paper thanks for a discussion of "the global pooling kernel size" does. This script
takes a trained model, rebuilds it in both modes with the same weights, and scores both on
CamVid val at one scale and at the paper's multi-scale + flip setting (Sec 4.3/4.4: scales
0.75-2.0). `--crop` must be the crop the model was trained with (the camvid_cpu recipe:
160x224).

Example::

    python benchmarks/pooling_at_test_time.py --model runs/camvid_cpu/checkpoints/best.keras --crop 160 224
    python benchmarks/pooling_at_test_time.py --settings single-scale --results benchmarks/results/test_pooling_ablation.json \
        --model runs/ablation_medium/{one_stage,no_spg,spg_sigmoid}_seed{0,1,2}.keras

With several models the summary gives the paired difference crop - global per setting: mean
and its standard error over the models.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.setup_tensorflow_logging()

import keras  # noqa: E402

from spgnet_keras.data import dataset_spec  # noqa: E402
from spgnet_keras.evaluation import dataset_pairs, evaluate  # noqa: E402
from spgnet_keras.models.spgnet import SPGNet  # noqa: E402

SETTINGS = {
    "single-scale": dict(scales=(1.0,), flip=False),
    "multi-scale + flip": dict(scales=(0.75, 1.0, 1.25, 1.5, 1.75, 2.0), flip=True),
}


def pooling_variants(model, crop):
    """{"global": model, "crop": model} with `model`'s weights."""
    if not isinstance(model, SPGNet):
        raise ValueError(f"--model must be an SPGNet, got {type(model).__name__}.")
    variants = {}
    for mode, crop_size in (("global", None), ("crop", list(crop))):
        variant = SPGNet.from_config({**model.get_config(), "test_pooling": mode, "test_pooling_crop": crop_size})
        variant.set_weights(model.get_weights())
        variants[mode] = variant
    return variants


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, nargs="+", help="trained SPGNets (.keras), all with --crop")
    parser.add_argument("--crop", type=int, nargs=2, default=[160, 224], metavar=("HEIGHT", "WIDTH"),
                        help="the training crop (default 160 224, the camvid_cpu recipe)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--max-images", type=int, default=None, help="first N val images (default all 101)")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of {list(SETTINGS)}")
    parser.add_argument("--results", default=None, help="JSON (default benchmarks/results/test_pooling.json)")
    args = parser.parse_args(argv)
    settings = _common.comma_choices(parser, args.settings, SETTINGS, "setting")

    root = _common.camvid_root(args.data_root)
    spec = dataset_spec("camvid", root)
    pairs = dataset_pairs("camvid", root, "val")[: args.max_images]
    rows = []
    for path in args.model:
        rows += score_model(path, args.crop, pairs, spec, settings)
    lines = [f"Test-time pooling, training crop {args.crop[0]}x{args.crop[1]}, {rows[0]['images']} CamVid val images.",
             "", "| model | test_pooling | setting | mIoU (%) | pixel acc. (%) | s |", "|---|---|---|---:|---:|---:|"]
    lines += [f"| `{r['model']}` | {r['test_pooling']} | {r['setting']} | {100 * r['miou']:.2f} | "
              f"{100 * r['pixel_accuracy']:.2f} | {r['seconds']:.0f} |" for r in rows]
    lines += ["", *paired_differences(rows, settings)]
    print("\n".join(lines))
    results = Path(args.results) if args.results else _common.RESULTS / "test_pooling.json"
    _common.write_json(results, dict(command=_common.command_line(), models=args.model, crop=args.crop, rows=rows))


def score_model(path, crop, pairs, spec, settings):
    model = keras.saving.load_model(path, safe_mode=True)
    rows = []
    for mode, variant in pooling_variants(model, crop).items():
        compiled = _common.CompiledModel(variant)
        for name in settings:
            start = time.perf_counter()
            result = evaluate(compiled, pairs, num_classes=spec.num_classes, class_names=spec.class_names,
                              **SETTINGS[name])
            rows.append(dict(model=path, test_pooling=mode, setting=name, miou=result.miou,
                             pixel_accuracy=result.pixel_accuracy, images=result.num_images,
                             seconds=time.perf_counter() - start))
            print(f"{path}: {mode:6s} {name:18s} mIoU {100 * result.miou:.2f} %  ({result.num_images} images)",
                  flush=True)
    return rows


def paired_differences(rows, settings):
    """Per setting: crop - global mIoU (points), mean ± standard error over the models."""
    lines = []
    for name in settings:
        by_model = {}
        for r in rows:
            if r["setting"] == name:
                by_model.setdefault(r["model"], {})[r["test_pooling"]] = 100 * r["miou"]
        differences = [m["crop"] - m["global"] for m in by_model.values()]
        error = statistics.stdev(differences) / math.sqrt(len(differences)) if len(differences) > 1 else float("nan")
        lines.append(f"- {name}: crop - global = {statistics.mean(differences):+.2f} ± {error:.2f} mIoU points "
                     f"(mean ± standard error over {len(differences)} models; crop better in "
                     f"{sum(d > 0 for d in differences)}, worse in {sum(d < 0 for d in differences)})")
    return lines


if __name__ == "__main__":
    main()
