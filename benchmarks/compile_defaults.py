"""`SPGNet.compile()` defaults against the `spgnet train` recipe, same model, data and steps.

Both runs start from the same random weights (seeded) and see the same CamVid training
batches (the pipeline is seeded): 2 x ResNet-18 SPGNet, decoder width 64, crops 160x224,
batch 8 (the `camvid_cpu` experiment). Run A calls `model.compile()` with no argument (Adam
1e-3, cross-entropy with ignore label 255 on every output, mIoU); run B calls
`model.compile(**recipe_compile_arguments(...))` with the `camvid_cpu` experiment's
optimizer (SGD 0.02, momentum 0.9, poly decay over the run, weight decay 1e-4) and loss.
Each is scored with `model.evaluate` on all 101 CamVid val images (full 240x180 frames,
single scale; `prediction_miou`).

    python benchmarks/compile_defaults.py --steps 150
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.setup_tensorflow_logging()

import keras  # noqa: E402

from spgnet_keras import SPGNet  # noqa: E402
from spgnet_keras.config import experiment_config  # noqa: E402
from spgnet_keras.data import make_dataset  # noqa: E402
from spgnet_keras.training import recipe_compile_arguments  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "compile_defaults.json"


def run(kind, steps, root, seed):
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    recipe = experiment_config("camvid_cpu")
    train = make_dataset("camvid", "train", root=root, batch_size=recipe.data.batch_size,
                         crop_size=tuple(recipe.data.crop_size), training=True, seed=seed, repeat=True)
    val = make_dataset("camvid", "val", root=root, batch_size=1)
    model = SPGNet.from_preset(recipe.model.preset, num_classes=11, **recipe.model.arguments)
    if kind == "compile_defaults":
        model.compile()
    else:
        model.compile(**recipe_compile_arguments(model, recipe.optimizer, recipe.loss, steps))
    start = time.perf_counter()
    history = model.fit(train, epochs=1, steps_per_epoch=steps, verbose=2)
    seconds = time.perf_counter() - start
    scores = model.evaluate(val, verbose=0, return_dict=True)
    return dict(kind=kind, steps=steps, seed=seed, train_seconds=round(seconds, 1),
                final_train_loss=float(history.history["loss"][-1]),
                val_miou=float(scores["prediction_miou"]), val_loss=float(scores["loss"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="CamVid root (default: ../shared/data/camvid)")
    args = parser.parse_args()
    root = _common.camvid_root(args.data)
    results = [run(kind, args.steps, root, args.seed) for kind in ("compile_defaults", "recipe")]
    for result in results:
        print(json.dumps(result))
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
