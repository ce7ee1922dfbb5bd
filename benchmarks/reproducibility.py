"""Is an ablation run reproducible? Same seed, same batches, trained twice in one process.

Builds the `medium` ablation's CamVid training stream twice from the same seed and compares the
first `--batches` batches; then trains the same variant twice for `--steps` steps (same seed,
so the same initial weights and batches) and reports the per-step losses and the largest
weight difference after training. `--deterministic` repeats the pair with
`tf.config.experimental.enable_op_determinism()` (deterministic kernels; slower). Run it
with `TF_ENABLE_ONEDNN_OPTS=0` in the environment to take oneDNN's kernels out.

Example::

    python benchmarks/reproducibility.py --variant no_spg --steps 10 --deterministic
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.setup_tensorflow_logging()

import ablation  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from spgnet_keras.config import DataConfig, LossConfig, OptimizerConfig  # noqa: E402
from spgnet_keras.training import make_datasets, recipe_compile_arguments  # noqa: E402


def training_stream(root, seed, settings):
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    config = DataConfig(dataset="camvid", root=str(root), crop_size=list(settings["crop"]),
                        batch_size=settings["batch"], scales=settings["scales"])
    train, _, _, num_classes = make_datasets(config, seed, settings["batch"])
    return train, num_classes


def first_batches(root, seed, settings, count):
    train, _ = training_stream(root, seed, settings)
    return [(image.numpy(), mask.numpy()) for image, mask in train.take(count)]


def train_once(variant, root, seed, settings, steps):
    """(per-step losses, initial weights, trained weights) of `steps` recipe steps from `seed`."""
    train, num_classes = training_stream(root, seed, settings)
    model = ablation.build_variant(variant, num_classes, settings["decoder"])
    initial = [w.numpy() for w in model.weights]
    model.compile(**recipe_compile_arguments(model, OptimizerConfig(learning_rate=settings["learning_rate"]),
                                             LossConfig(), settings["steps"]))
    losses = []
    model.fit(train, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(float(logs["loss"])))])
    return losses, initial, [w.numpy() for w in model.weights]


def compare_training(variant, root, seed, settings, steps, label):
    start = time.perf_counter()
    (loss_a, init_a, weights_a), (loss_b, init_b, weights_b) = (train_once(variant, root, seed, settings, steps)
                                                                for _ in range(2))
    same_init = sum(np.array_equal(a, b) for a, b in zip(init_a, init_b))
    differing = [i for i, (a, b) in enumerate(zip(loss_a, loss_b)) if a != b]
    relative = math.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(weights_a, weights_b))
                         / sum(float(np.sum(a ** 2)) for a in weights_a))
    changed = sum(not np.array_equal(a, b) for a, b in zip(weights_a, weights_b))
    print(f"{label}: {steps} steps twice in {time.perf_counter() - start:.0f} s; initial weights: {same_init} of "
          f"{len(init_a)} tensors identical; loss run 1 / run 2 at step 1 "
          f"{loss_a[0]!r} / {loss_b[0]!r}, at step {steps} (running mean) {loss_a[-1]:.6f} / {loss_b[-1]:.6f}; "
          f"first step whose loss differs: {differing[0] + 1 if differing else 'none'}; {changed} of "
          f"{len(weights_a)} weight tensors differ, ||w1 - w2|| / ||w1|| over all weights {relative:.3g}"
          f"{' (bitwise identical)' if relative == 0 else ''}; per-step running loss run 1 "
          f"{[round(v, 5) for v in loss_a]}, run 2 {[round(v, 5) for v in loss_b]}", flush=True)
    return relative


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=ablation.VARIANTS, default="no_spg")
    parser.add_argument("--budget", choices=sorted(ablation.BUDGETS), default="medium")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batches", type=int, default=20, help="training batches compared between two streams")
    parser.add_argument("--deterministic", action="store_true",
                        help="also train the pair with tf.config.experimental.enable_op_determinism()")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batches < 1:
        parser.error("--steps and --batches must be at least 1")
    settings = ablation.BUDGETS[args.budget]
    root = _common.camvid_root(args.data_root)

    a, b = (first_batches(root, args.seed, settings, args.batches) for _ in range(2))
    same = sum(np.array_equal(xa, xb) and np.array_equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    print(f"training stream, seed {args.seed}: {same} of {len(a)} batches identical between two builds", flush=True)
    compare_training(args.variant, root, args.seed, settings, args.steps, f"{args.variant}, default kernels")
    if args.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        compare_training(args.variant, root, args.seed, settings, args.steps,
                         f"{args.variant}, enable_op_determinism()")


if __name__ == "__main__":
    main()
