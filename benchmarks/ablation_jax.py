"""The Table 3 / Table 4 ablation of `benchmarks/ablation.py` on Keras' JAX backend, for a GPU.

What: every (seed, variant) run trains `SPGNet(num_classes=11, **ablation_arguments(variant),
decoder_channels=D)` on CamVid train with the paper's recipe and scores CamVid val mIoU, as
`benchmarks/ablation.py` does, and stores records with the same fields (plus the backend and
the device).

Why: `ablation.py` trains through `tf.data` and `spgnet_keras.training` / `evaluation`,
which import TensorFlow; the GPU machines lent to this project have JAX but no TensorFlow
(see `benchmarks/gpu_speed.py`). Here the data are in-memory arrays (packed once, where
TensorFlow is installed) and everything after that is numpy, Keras and JAX, through the
package's TensorFlow-free modules: SPGNet, the recipe (`spgnet_keras.recipe`: losses,
metrics, optimizers, schedules), `spgnet_keras.array_augment`, `spgnet_keras.scoring` and
`spgnet_keras.profiler.count_params`; the variants and budgets are `ablation_settings.py`'s,
shared with `ablation.py`. `--forbid-tensorflow` makes importing TensorFlow fail, to prove it.

Same as `ablation.py`:

- Variants (`one_stage`, `no_spg`, `spg_sum`, `spg_softmax`, `spg_sigmoid`, ...; not
  `deeplabv3plus`, which needs keras-cv and so TensorFlow), seeds `0..N-1`, seed-major
  order, the same budgets (`smoke`, `small`, `medium`, `full`).
- Recipe: `recipe_compile_arguments(model, OptimizerConfig(learning_rate=...), LossConfig(),
  steps)`, as `ablation.py`: SGD momentum 0.9 with coupled weight decay 1e-4 on every
  trainable variable, poly decay (power 0.9) over the run's steps, `SegmentationCrossEntropy`
  (ignore label 255) on every output, stage-1 outputs weighted `DEFAULT_STAGE_WEIGHT` (1.0).
  One `fit` epoch of `steps` batches, jitted. The training-time mIoU metric is left out (it
  is not recorded and costs GPU time).
- Augmentation: `spgnet_keras.array_augment.augment_example`, `spgnet_keras/data/augment.py`'s
  rule in numpy (random scale from the budget's scales, then horizontal flip with
  probability 0.5, then a random crop, padding at the bottom/right with the ImageNet mean
  colour and label 255; image bilinear and mask nearest neighbour with half-pixel centres,
  as `tf.image.resize`), in `keras.utils.PyDataset` worker threads. Batch `k` of seed `s`
  depends only on `(s, k)` (the image order is a seeded permutation per pass over train),
  so runs are reproducible whatever the threading; the random streams are numpy's, not
  those of `tf.random`, so the batches are not the ones `ablation.py` draws.
- Scoring: every val image at full size (240x180 here), single scale, inference mode, argmax;
  a confusion matrix over pixels labelled != 255; per-class IoU `tp / (tp + fp + fn)`, NaN
  (and left out of the mean) for a class absent from both labels and predictions; mIoU the
  mean of the others; pixel accuracy = correct / labelled: `spgnet_keras.scoring`, the rule
  of `spgnet_keras.evaluation.evaluate` (whose `unassigned` stays 0: a model never
  predicts outside `[0, C)`). Both `prediction` and, for two-stage supervised variants,
  `stage1` are scored.

Subcommands:

`pack` (TensorFlow allowed; the package's readers `load_image` / `load_label`) writes
CamVid train and val as uint8 arrays (images `[N, H, W, 3]` RGB, labels `[N, H, W]` with
void = 255) and the class names into one compressed `.npz` (default
`runs/camvid_arrays.npz`, git-ignored; about 33 MB; the images delta-coded along the width, which
`run` undoes)::

    python benchmarks/ablation_jax.py pack

`run` (JAX backend; TensorFlow not needed)::

    KERAS_BACKEND=jax python benchmarks/ablation_jax.py run --budget smoke --forbid-tensorflow
    KERAS_BACKEND=jax python benchmarks/ablation_jax.py run --budget medium --seeds 3 \\
        --variants one_stage,no_spg,spg_sigmoid --results runs/ablation_jax_medium.json

Results go to `--results` (default `benchmarks/results/ablation_jax_<budget>[_ohem].json`), in
`ablation.py`'s layout (`{"runs": [...], "machines": [...]}`), rewritten after every run;
(variant, seed) pairs already stored are skipped, so a budget can be run in pieces.
`--time-limit MIN`: no run starts after MIN minutes, nor one that the mean duration of this
invocation's runs says would end after them.

On a lent GPU machine (`device` tool): its image has JAX (CUDA) but neither TensorFlow nor
Keras, so Keras 3.15.1 travels as wheels with its two dependencies the image lacks (made
here, once, into the git-ignored `runs/wheels`)::

    python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d runs/wheels \\
        keras==3.15.1 namex optree==0.20.0

and the run carries `runs/camvid_arrays.npz` and `runs/wheels` (`carry`), from the repo
root (`timeout_s` 598): the issue-26 evidence, the `full` budget with the paper's OHEM, as
many seeds as 7 minutes allow (5-8 expected), then `fit` images/s of 2xR50-256 at 768x768
with OHEM (`gpu_speed.py train --losses recipe_ohem`)::

    set -o pipefail; python3 -m pip install -q --no-index --no-deps --target /tmp/site runs/wheels/*.whl || exit 1;
    export PYTHONPATH=/tmp/site:. KERAS_BACKEND=jax PYTHONUNBUFFERED=1 SPGNET_COMMIT=<commit>;
    timeout 450 python3 benchmarks/ablation_jax.py run --budget full --seeds 8 --ohem \\
        --variants one_stage,no_spg,spg_sigmoid --time-limit 7.0 --workers 12 \\
        --results $OUT/ablation_jax_full_ohem.json 2>&1 | tee $OUT/ablation_log.txt;
    timeout $((590-SECONDS)) python3 benchmarks/gpu_speed.py train --size 768x768 --batch 8 --steps 16 \\
        --epochs 3 --dtypes mixed_bfloat16 --losses recipe_ohem,keras --deep-supervision-only \\
        --budget $((460-SECONDS)) --out $OUT/gpu-training-ohem.json 2>&1 | tee $OUT/speed_log.txt

Each variant is built and compiled once per invocation (its first run) and re-initialised for
every later seed (`reinitialise`: the initial weights of a model built after
`keras.utils.set_random_seed(seed)`, bit-equal to a fresh build, and a zero optimizer state), so
the jit compiles of the train and predict steps are paid once per variant (on the CPU here,
smoke budget: first step 6-10 s for seed 0, 0.1-0.7 s for seed 1). Batches cost about 8 ms
each to make in one thread (crops 160x224, batch 8), so `--workers` threads keep ahead of a
GPU step. `--forbid-tensorflow` is not needed there (TensorFlow is absent) and must not be
combined with `JAX_COMPILATION_CACHE_DIR`.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.abc
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(1, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation_settings import BUDGETS, SPGNET_VARIANTS, STAGE1  # noqa: E402  (imports no Keras)

DEFAULT_ARRAYS = REPO / "runs" / "camvid_arrays.npz"
RESULTS = REPO / "benchmarks" / "results"
IMAGE_CODING = "width_delta"  # how `pack` stores images (see width_delta)
# Tags that keep the numpy random streams of image order and augmentation apart.
_ORDER_STREAM, _AUGMENT_STREAM = 1, 2


class NoTensorFlow(importlib.abc.MetaPathFinder):
    """A meta-path finder under which importing TensorFlow raises ModuleNotFoundError."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (--forbid-tensorflow)", name=name)
        return None


def forbid_tensorflow():
    """Makes TensorFlow un-importable in this process (it must not be imported already)."""
    if "tensorflow" in sys.modules:
        raise RuntimeError("TensorFlow was imported before --forbid-tensorflow took effect.")
    sys.meta_path.insert(0, NoTensorFlow())


# --------------------------------------------------------------------------------------
# pack: CamVid files -> one .npz (TensorFlow allowed)
# --------------------------------------------------------------------------------------


def read_split(root, split):
    """(images uint8 [N, H, W, 3], labels uint8 [N, H, W], stems) of a CamVid split, read with the
    package's readers; every image of a split must have the same size."""
    from spgnet_keras.data.decoding import load_image, load_label
    from spgnet_keras.evaluation import dataset_pairs

    images, labels, stems = [], [], []
    for image_path, label_path in dataset_pairs("camvid", root, split):
        image, label = load_image(image_path), load_label(label_path)
        if image.shape[:2] != label.shape:
            raise ValueError(f"{image_path} is {image.shape[:2]} but its label {label.shape}.")
        if label.min() < 0 or label.max() > 255:
            raise ValueError(f"{label_path} holds values outside 0-255.")
        images.append(image.astype(np.uint8))
        labels.append(label.astype(np.uint8))
        stems.append(Path(image_path).stem)
    sizes = {image.shape for image in images}
    if len(sizes) != 1:
        raise ValueError(f"The {split} images have several sizes {sorted(sizes)}; pack needs one.")
    return np.stack(images), np.stack(labels), stems


def pack(out, data_root=None):
    """Writes CamVid train and val as uint8 arrays and the class names to the compressed `out`."""
    import _common

    _common.setup_tensorflow_logging()
    from spgnet_keras.constants import IGNORE_LABEL
    from spgnet_keras.data import dataset_spec
    from spgnet_keras.labels import check_label_values

    root = _common.camvid_root(data_root)
    spec = dataset_spec("camvid", root)
    arrays = dict(class_names=np.array(spec.class_names), image_coding=np.array(IMAGE_CODING))
    for split in ("train", "val"):
        images, labels, stems = read_split(root, split)
        check_label_values(labels, spec.num_classes, IGNORE_LABEL, f"CamVid {split}")
        arrays.update({f"{split}_images": images, f"{split}_labels": labels, f"{split}_stems": np.array(stems)})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stored = {name: width_delta(value) if name.endswith("_images") else value for name, value in arrays.items()}
    np.savez_compressed(out, **stored)
    print(f"wrote {out}: {out.stat().st_size / 2**20:.1f} MiB from {root}")
    for name, value in arrays.items():
        print(f"  {name}: {value.dtype} {value.shape}")


def width_delta(images):
    """uint8 images with each pixel replaced by its difference (mod 256) from its left neighbour:
    lossless, and zlib compresses it about 20 % smaller than the pixels (a PNG "Sub" filter)."""
    return np.diff(images, axis=2, prepend=np.zeros_like(images[:, :, :1]))


def undo_width_delta(deltas):
    """The images of `width_delta` (a running sum mod 256 along the width)."""
    return np.cumsum(deltas, axis=2, dtype=np.uint8)


def load_arrays(path):
    """The arrays of a `pack` file, as a dict (loaded into memory)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; make it with `python benchmarks/ablation_jax.py pack`.")
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    coding = str(arrays.pop("image_coding", "none"))
    if coding != IMAGE_CODING:
        raise ValueError(f"{path}: images coded {coding!r}, expected {IMAGE_CODING!r}; re-run `pack`.")
    return {name: undo_width_delta(value) if name.endswith("_images") else value for name, value in arrays.items()}


# --------------------------------------------------------------------------------------
# Training batches: augment.py's scale / flip / crop in numpy (spgnet_keras.array_augment)
# --------------------------------------------------------------------------------------


class TrainBatches:
    """Seeded training batches: batch `k` is a function of (seed, k) alone.

    Pass `p` over train visits the images in `permutation(seed, p)`; example `i` of batch
    `k` is drawn from a generator seeded with `(seed, k, i)`.
    """

    def __init__(self, images, labels, batch, crop_hw, scales, seed, flip=True):
        self.images, self.labels = images, labels
        self.batch, self.crop_hw, self.scales, self.seed, self.flip = batch, tuple(crop_hw), scales, seed, flip
        self._orders = {}

    def order(self, epoch):
        """The image order of pass `epoch` over train."""
        if epoch not in self._orders:
            rng = np.random.default_rng([_ORDER_STREAM, self.seed, epoch])
            self._orders[epoch] = rng.permutation(len(self.images))
        return self._orders[epoch]

    def indices(self, index):
        """Train image indices of batch `index`."""
        count = len(self.images)
        positions = index * self.batch + np.arange(self.batch)
        return np.array([self.order(int(p // count))[p % count] for p in positions])

    def __call__(self, index):
        """(images float32 [B, h, w, 3], labels uint8 [B, h, w]) of batch `index`."""
        from spgnet_keras.array_augment import augment_example  # TensorFlow-free; after Keras' backend is chosen

        pairs = [augment_example(self.images[i], self.labels[i],
                                 np.random.default_rng([_AUGMENT_STREAM, self.seed, index, slot]),
                                 self.crop_hw, self.scales, self.flip)
                 for slot, i in enumerate(self.indices(index))]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def keras_batches(batches, steps, workers):
    """`batches` as a `keras.utils.PyDataset` of `steps` batches made in `workers` threads."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max(2 * workers, 4))

        def __len__(self):
            return steps

        def __getitem__(self, index):
            return batches(index)

    return Batches()


# --------------------------------------------------------------------------------------
# Model, recipe, fit
# --------------------------------------------------------------------------------------


def build_model(variant, num_classes, decoder):
    """The ablation variant, as ablation.build_variant builds it."""
    from spgnet_keras.models import SPGNet, ablation_arguments

    return SPGNet(num_classes=num_classes, **{**ablation_arguments(variant), "decoder_channels": decoder})


def loss_config(ohem, crop):
    """`LossConfig()` as ablation.py, or with the paper's OHEM (`paper_ohem_loss`) scaled to `crop`."""
    from spgnet_keras.config import LossConfig, paper_ohem_loss

    return paper_ohem_loss(crop) if ohem else LossConfig()


def compile_recipe(model, learning_rate, steps, loss):
    """`model.compile(**recipe_compile_arguments(...))` with `OptimizerConfig(learning_rate=...)`
    and the LossConfig `loss`, as ablation.py, without the training-time metric; jitted."""
    from spgnet_keras.config import OptimizerConfig
    from spgnet_keras.recipe import recipe_compile_arguments

    arguments = recipe_compile_arguments(model, OptimizerConfig(learning_rate=learning_rate), loss, steps)
    model.compile(**{**arguments, "metrics": None}, jit_compile=True)


def reinitialise(model, variant, seed, num_classes, decoder):
    """Gives the compiled `model` seed `seed`'s initial weights (those of a model built after
    `keras.utils.set_random_seed(seed)`) and a zero optimizer state (iteration 0, so the poly
    schedule restarts; no momentum), keeping its compiled train and predict steps."""
    import keras

    keras.utils.set_random_seed(seed)
    model.set_weights(build_model(variant, num_classes, decoder).get_weights())
    for variable in model.optimizer.variables:
        variable.assign(keras.ops.zeros(variable.shape, variable.dtype))


def step_timer():
    """A callback recording the wall time at the end of the first and the last training batch."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.first, self.last, self.batches = time.perf_counter(), None, None, 0

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            self.first = now if self.first is None else self.first
            self.last, self.batches = now, batch + 1

        def steady_step_seconds(self):
            """Mean seconds per step after the first (which includes the jit compile)."""
            if self.batches < 2:
                return None
            return (self.last - self.first) / (self.batches - 1)

    return StepTimer()


# --------------------------------------------------------------------------------------
# Scoring (spgnet_keras.evaluation's conventions)
# --------------------------------------------------------------------------------------


def predicted_labels(model, images, batch):
    """{output name: uint8 [N, H, W] argmax} of `model` in inference mode on uint8 `images`.

    Every call gets a full batch (the last one padded with copies of its last image, whose
    predictions are dropped: inference-mode BatchNorm treats images independently), so the
    predict function is compiled once.
    """
    batch = min(batch, len(images))
    predictions = {name: [] for name in model.output}
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        count = len(chunk)
        if count < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - count, axis=0)])
        outputs = model.predict_on_batch(chunk.astype(np.float32))
        for name in predictions:
            predictions[name].append(np.argmax(np.asarray(outputs[name])[:count], axis=-1).astype(np.uint8))
    return {name: np.concatenate(parts) for name, parts in predictions.items()}


def score(model, images, labels, num_classes, batch=8):
    """{output name: (per-class IoU, mIoU, pixel accuracy)} on the val arrays (`spgnet_keras.scoring`)."""
    from spgnet_keras.constants import IGNORE_LABEL
    from spgnet_keras.scoring import confusion_matrix, iou_from_confusion, mean_iou_from_confusion, pixel_accuracy

    scores = {}
    for name, predicted in predicted_labels(model, images, batch).items():
        matrix = confusion_matrix(labels, predicted, num_classes, ignore_index=IGNORE_LABEL)
        scores[name] = iou_from_confusion(matrix), mean_iou_from_confusion(matrix), pixel_accuracy(matrix)
    return scores


# --------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------


def device_description():
    """The JAX backend and devices, e.g. {"platform": "gpu", "devices": ["NVIDIA H100 80GB HBM3"]}."""
    import jax

    devices = jax.devices()
    return dict(platform=devices[0].platform, devices=[getattr(d, "device_kind", str(d)) for d in devices],
                jax=jax.__version__)


def run_one(variant, seed, budget, settings, data, num_classes, workers, log, compiled):
    """Trains and scores one (variant, seed); returns its record.

    `compiled` maps variants to their compiled models: a variant is built and compiled once (by
    its first run) and re-initialised for every later seed (`reinitialise`), so its train and
    predict steps are compiled once per invocation."""
    import keras

    from spgnet_keras.constants import PREDICTION
    from spgnet_keras.profiler import count_params

    batches = TrainBatches(data["train_images"], data["train_labels"], settings["batch"], settings["crop"],
                           settings["scales"], seed)
    loss = loss_config(settings["ohem"], settings["crop"])
    start = time.perf_counter()
    fresh = variant not in compiled
    if fresh:
        keras.utils.set_random_seed(seed)
        compiled[variant] = build_model(variant, num_classes, settings["decoder"])
        compile_recipe(compiled[variant], settings["learning_rate"], settings["steps"], loss)
    else:
        reinitialise(compiled[variant], variant, seed, num_classes, settings["decoder"])
    model = compiled[variant]
    timer = step_timer()
    history = model.fit(keras_batches(batches, settings["steps"], workers), epochs=1,
                        steps_per_epoch=settings["steps"], verbose=0, callbacks=[timer])
    final_loss = float(history.history["loss"][-1])
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    val_images, val_labels = data["val_images"], data["val_labels"]
    if settings["val_images"]:
        val_images, val_labels = val_images[: settings["val_images"]], val_labels[: settings["val_images"]]
    scores = score(model, val_images, val_labels, num_classes)
    eval_seconds = time.perf_counter() - start
    iou, miou, accuracy = scores[PREDICTION]
    record = dict(variant=variant, seed=seed, budget=budget,
                  settings={k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
                  params=count_params(model), outputs=sorted(model.output), miou=miou, pixel_accuracy=accuracy,
                  stage1_miou=scores[STAGE1][1] if STAGE1 in scores else None,
                  iou=[None if math.isnan(v) else float(v) for v in iou], final_train_loss=final_loss,
                  ohem_threshold=loss.ohem_threshold, ohem_min_kept=loss.ohem_min_kept, compiled_here=fresh,
                  train_seconds=train_seconds, eval_seconds=eval_seconds, val_images=int(len(val_images)),
                  first_step_seconds=timer.first - timer.start if timer.first else None,
                  step_seconds=timer.steady_step_seconds(), stage_weight=1.0,
                  backend=keras.backend.backend(), device=device_description())
    stage1 = record["stage1_miou"]
    log(f"{variant} seed {seed}: mIoU {100 * miou:.2f} %"
        + (f", stage 1 {100 * stage1:.2f} %" if stage1 is not None else "")
        + f", loss {final_loss:.3f}, train {train_seconds:.0f} s (first step {record['first_step_seconds']:.1f} s, then "
        + (f"{1000 * record['step_seconds']:.0f} ms/step" if record["step_seconds"] else "-")
        + f"), eval {eval_seconds:.1f} s")
    return record


def load_results(path):
    """Stored results ({"runs": [...], "machines": [...]}; a bare list of records is accepted)."""
    path = Path(path)
    if not path.exists():
        return dict(runs=[], machines=[])
    stored = json.loads(path.read_text())
    return dict(runs=stored, machines=[]) if isinstance(stored, list) else stored


def write_results(path, stored):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stored, indent=2))


def parse_crop(parser, text):
    """"HxW" -> (H, W)."""
    try:
        height, width = (int(side) for side in text.lower().split("x"))
    except ValueError:
        parser.error(f"--crop must be HxW (e.g. 160x224), got {text!r}")
    if height <= 0 or width <= 0:
        parser.error(f"--crop sides must be positive, got {text!r}")
    return height, width


def budget_settings(parser, args):
    """The budget's settings with the command line's overrides."""
    settings = dict(BUDGETS[args.budget], ohem=args.ohem)
    if args.crop:
        settings["crop"] = parse_crop(parser, args.crop)
    for name in ("steps", "batch", "decoder", "val_images", "learning_rate"):
        value = getattr(args, name)
        if value is not None:
            if not value > 0:
                parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
            settings[name] = value
    return settings


def machine_record(started, runs_done, command):
    return dict(date=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), nproc=os.cpu_count(),
                cpu=platform.processor() or platform.machine(), seconds=time.perf_counter() - started,
                runs=runs_done, command=command, python=platform.python_version(), device=device_description())


def starts_in_time(started, durations, limit_minutes):
    """Whether a new run may start: before the limit, and (by this invocation's mean run time) ending by it."""
    if not limit_minutes:
        return True
    elapsed = time.perf_counter() - started
    expected = sum(durations) / len(durations) if durations else 0.0
    return elapsed + expected <= 60 * limit_minutes


def run(parser, args):
    """The `run` subcommand."""
    if args.forbid_tensorflow:
        if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
            parser.error("--forbid-tensorflow breaks JAX's persistent compilation cache (etils probes for TensorFlow "
                         "with importlib.util.find_spec, which the finder makes raise): unset JAX_COMPILATION_CACHE_DIR")
        forbid_tensorflow()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    if keras.backend.backend() != "jax":
        parser.error(f"run needs KERAS_BACKEND=jax, got {keras.backend.backend()!r}")
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in SPGNET_VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; expected {list(SPGNET_VARIANTS)}")
    settings = budget_settings(parser, args)
    data = load_arrays(args.arrays)
    num_classes = len(data["class_names"])
    default_name = f"ablation_jax_{args.budget}{'_ohem' if args.ohem else ''}.json"
    results_path = Path(args.results) if args.results else RESULTS / default_name
    stored = load_results(results_path)
    done = {(r["variant"], r["seed"]) for r in stored["runs"]}
    print(f"JAX devices: {device_description()}; train {data['train_images'].shape}, val {data['val_images'].shape}",
          flush=True)

    def log(message):
        print(message, flush=True)

    # durations[reused]: run times with and without compiling (the first run of a variant compiles)
    started, durations, runs_done, compiled = time.perf_counter(), {}, 0, {}
    command = "python benchmarks/ablation_jax.py " + " ".join(sys.argv[1:])
    for seed in range(args.seeds):
        for variant in variants:
            if (variant, seed) in done:
                log(f"{variant} seed {seed}: stored, skipped")
                continue
            if not starts_in_time(started, durations.get(variant in compiled, []), args.time_limit):
                log("time limit reached; resume with the same command")
                break
            run_started, reused = time.perf_counter(), variant in compiled
            stored["runs"].append(run_one(variant, seed, args.budget, settings, data, num_classes, args.workers, log,
                                          compiled))
            durations.setdefault(reused, []).append(time.perf_counter() - run_started)
            runs_done += 1
            write_results(results_path, stored)
    stored["machines"].append(machine_record(started, runs_done, command))
    write_results(results_path, stored)
    if "tensorflow" in sys.modules:
        log("note: TensorFlow was imported during this run")
    log(f"{runs_done} runs in {(time.perf_counter() - started) / 60:.1f} min -> {results_path}")


def report(args):
    """The `report` subcommand (TensorFlow allowed): `ablation.py`'s table of the stored runs."""
    import _common
    from ablation import table_markdown

    stored = load_results(args.results)
    runs = stored["runs"]
    if not runs:
        raise SystemExit(f"{args.results} holds no runs; make them with `ablation_jax.py run`.")
    budgets = {r["budget"] for r in runs}
    if len(budgets) != 1:
        raise SystemExit(f"{args.results} mixes budgets {sorted(budgets)}; one table is of one budget.")
    budget, first = budgets.pop(), runs[0]
    ohem = first.get("ohem_threshold") is not None
    devices = sorted({", ".join(r["device"]["devices"]) for r in runs})
    commands = "; ".join(f"`{m['command']}`" for m in stored["machines"]) or "-"
    loss = (f"the paper's OHEM on every output (threshold {first['ohem_threshold']}, at least "
            f"{first['ohem_min_kept']} pixels per crop: `config.paper_ohem_loss`)" if ohem else "plain cross-entropy")
    lines = [f"## Ablation (Tables 3 and 4) on CamVid, Keras JAX backend, budget `{budget}`{' + OHEM' if ohem else ''}",
             "", f"- Commands: {commands}", f"- Devices: {'; '.join(devices)} (JAX {first['device']['jax']})",
             f"- Loss: {loss}; each variant compiled once, re-initialised per seed", "",
             table_markdown(budget, runs, max(r["seed"] for r in runs) + 1, overrides=first["settings"]), ""]
    section = args.section or f"ablation-jax-{budget}{'-ohem' if ohem else ''}"
    _common.publish(section, "\n".join(lines), not args.no_doc)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    pack_parser = commands.add_parser("pack", help="CamVid train/val -> one .npz (TensorFlow allowed)")
    pack_parser.add_argument("--out", default=str(DEFAULT_ARRAYS))
    pack_parser.add_argument("--data-root", default=None)
    pack_parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    run_parser = commands.add_parser("run", help="train and score the variants (KERAS_BACKEND=jax)")
    run_parser.add_argument("--arrays", default=str(DEFAULT_ARRAYS), help="the .npz written by `pack`")
    run_parser.add_argument("--budget", choices=sorted(BUDGETS), default="smoke")
    run_parser.add_argument("--variants", default="one_stage,no_spg,spg_sigmoid")
    run_parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per variant (default 1)")
    run_parser.add_argument("--steps", type=int, default=None)
    run_parser.add_argument("--batch", type=int, default=None)
    run_parser.add_argument("--crop", default=None, help="HxW training crop")
    run_parser.add_argument("--decoder", type=int, default=None, help="decoder width D")
    run_parser.add_argument("--val-images", type=int, default=None, help="score the first N val images")
    run_parser.add_argument("--learning-rate", type=float, default=None)
    run_parser.add_argument("--ohem", action="store_true",
                            help="the paper's OHEM on every output (threshold 0.7, 12500 pixels per 768x768 image "
                                 "scaled to the crop: config.paper_ohem_loss); default plain cross-entropy, as "
                                 "ablation.py")
    run_parser.add_argument("--results", default=None,
                            help="JSON (default benchmarks/results/ablation_jax_<budget>.json)")
    run_parser.add_argument("--time-limit", type=float, default=None,
                            help="minutes; no run starts after this or is expected to end after it")
    run_parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                            help="threads making training batches")
    run_parser.add_argument("--forbid-tensorflow", action="store_true",
                            help="make importing TensorFlow fail (proves the run does not need it where it is "
                                 "installed; not with JAX_COMPILATION_CACHE_DIR)")
    report_parser = commands.add_parser("report", help="the table of stored runs -> docs/benchmarks.md")
    report_parser.add_argument("--results", required=True, help="a JSON written by `run`")
    report_parser.add_argument("--section", default=None, help="docs section (default ablation-jax-<budget>[-ohem])")
    report_parser.add_argument("--no-doc", action="store_true", help="print only")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "pack":
        if Path(args.out).exists() and not args.overwrite:
            parser.error(f"{args.out} exists; pass --overwrite to replace it")
        pack(args.out, args.data_root)
    elif args.command == "report":
        report(args)
    else:
        run(parser, args)


if __name__ == "__main__":
    main()
