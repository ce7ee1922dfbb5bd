"""SPGNet inference and training speed on a GPU, on Keras's JAX backend.

The GPU machines lent to this project (`device` tool: one H100, no network) have JAX and
PyTorch but no TensorFlow, and TensorFlow's GPU wheels (~0.6 GB, CUDA 12) are far over what
can be carried there. SPGNet's layers and model are backend-agnostic
(tests/models/test_backends.py: JAX outputs equal TensorFlow's to 1e-4 relative), so the
model is timed with `KERAS_BACKEND=jax`: every forward pass is one `jax.jit` of
`model.stateless_call` (XLA, as `jit_compile=True` would be on TensorFlow), and training
is `model.fit` (Keras' JAX trainer, jitted train step).

Subcommands:

- `macs` (TensorFlow backend, any machine): params and MACs of every model at every size
  (`spgnet_keras.profiler.count_macs`) -> `benchmarks/results/gpu_macs.json`, which the
  GPU run reads (MACs do not depend on the backend).
- `inference` (JAX backend, GPU): latency and images/s per (size, batch, dtype policy),
  models timed in interleaved rounds, median reported -> `--out` JSON.
- `train` (JAX backend, GPU): `fit` images/s of 2xR50-256 at 769x769, batch 8, with deep
  supervision (`prediction` + `stage1`, weight 0.4) and cross-entropy with ignore label
  255 (`keras.losses.SparseCategoricalCrossentropy(ignore_class=255)`: the package's OHEM
  loss is written on TensorFlow), against one output, per dtype policy -> `--out` JSON.
- `cost` (JAX backend, any machine; compiles only): XLA's flops and bytes accessed of each
  forward pass, i.e. how memory-bound each model is.
- `render` (any machine): the `gpu-inference` / `gpu-training` sections of
  docs/benchmarks.md from stored JSONs.

Models: `resnet50` (`keras.applications.ResNet50`, no top: the practical conv
throughput), the presets `spgnet_r18x1_128`, `spgnet_r18x2_128`, `spgnet_r50x2_256`
(`prediction` output only) and dilated DeepLabV3+ on ResNet-101 at output stride 16 and
8, built here from Keras layers (torchvision-style ResNet-101 with dilated last stages,
ASPP with image pooling, the DeepLabV3+ decoder) because keras-cv needs TensorFlow at
import time. Its TensorFlow-backend numbers (keras-cv ResNet-101 V2) are in the CPU tables.

Examples::

    python benchmarks/gpu_speed.py macs
    KERAS_BACKEND=jax python benchmarks/gpu_speed.py inference --sizes 512x1024,1024x2048 \\
        --batches 1,8 --dtypes mixed_bfloat16 --out results.json
    KERAS_BACKEND=jax python benchmarks/gpu_speed.py train --size 769x769 --batch 8 --out train.json
    python benchmarks/gpu_speed.py render --inference a.json --training b.json
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (also puts the repository on sys.path; imports no TensorFlow)
import keras  # noqa: E402
import numpy as np  # noqa: E402

from spgnet_keras.layers.resize import ResizeLike  # noqa: E402
from spgnet_keras.models.spgnet import PREDICTION, SPGNet  # noqa: E402

RESULTS = _common.RESULTS
MACS_JSON = RESULTS / "gpu_macs.json"
NUM_CLASSES, SPGNET_MODELS = _common.NUM_CLASSES, _common.SPGNET_MODELS
ALL_MODELS = ("resnet50", *SPGNET_MODELS, "deeplabv3plus_r101_os16", "deeplabv3plus_r101_os8")
LABELS = {
    **_common.MODEL_LABELS,
    "deeplabv3plus_r101_os16": "DeepLabV3+ R101, OS16 (dilated)",
    "deeplabv3plus_r101_os8": "DeepLabV3+ R101, OS8 (dilated)",
}
# (stack strides, stack dilations, ASPP rates) of a dilated ResNet-101 (DeepLabV3 paper).
DILATED = {16: ((1, 2, 2, 1), (1, 1, 1, 2), (6, 12, 18)), 8: ((1, 2, 1, 1), (1, 1, 2, 4), (12, 24, 36))}
R101_BLOCKS = (3, 4, 23, 3)


# ----------------------------------------------------------------------------- models

def conv_bn(x, filters, kernel, name, strides=1, dilation=1, relu=True):
    x = keras.layers.Conv2D(filters, kernel, strides=strides, dilation_rate=dilation, padding="same",
                            use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def bottleneck(x, width, strides, dilation, name):
    shortcut = x
    if strides != 1 or x.shape[-1] != 4 * width:
        shortcut = conv_bn(x, 4 * width, 1, f"{name}_proj", strides=strides, relu=False)
    y = conv_bn(x, width, 1, f"{name}_1")
    y = conv_bn(y, width, 3, f"{name}_2", strides=strides, dilation=dilation)  # stride on the 3x3 (v1.5)
    y = conv_bn(y, 4 * width, 1, f"{name}_3", relu=False)
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([shortcut, y]))


def dilated_deeplabv3plus(output_stride, input_shape, num_classes=NUM_CLASSES):
    """DeepLabV3+ (Chen et al. 2018) on a dilated ResNet-101."""
    strides, dilations, rates = DILATED[output_stride]
    inputs = keras.Input(input_shape)
    x = conv_bn(inputs, 64, 7, "stem", strides=2)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    low = None
    for stack, (blocks, stride, dilation) in enumerate(zip(R101_BLOCKS, strides, dilations)):
        for block in range(blocks):
            x = bottleneck(x, 64 * 2**stack, stride if block == 0 else 1, dilation, f"stack{stack}_block{block}")
        if stack == 0:
            low = x
    branches = [conv_bn(x, 256, 1, "aspp_1x1")]
    branches += [conv_bn(x, 256, 3, f"aspp_rate{rate}", dilation=rate) for rate in rates]
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(x)
    branches.append(ResizeLike(name="aspp_pool_broadcast")([conv_bn(pooled, 256, 1, "aspp_pool_proj"), x]))
    x = conv_bn(keras.layers.Concatenate(name="aspp_concat")(branches), 256, 1, "aspp_proj")
    low = conv_bn(low, 48, 1, "low_level")
    x = keras.layers.Concatenate(name="decoder_concat")([ResizeLike(name="aspp_upsample")([x, low]), low])
    x = conv_bn(x, 256, 3, "decoder1")
    x = conv_bn(x, 256, 3, "decoder2")
    x = keras.layers.Conv2D(num_classes, 1, name="classifier")(x)
    x = ResizeLike(name="logits_upsample", dtype="float32")([x, inputs])
    return keras.Model(inputs, x, name=f"deeplabv3plus_r101_os{output_stride}")


def build_model(name, height, width):
    """`_common.build_model` with the dilated DeepLabV3+ models built here."""
    builders = {f"deeplabv3plus_r101_os{stride}": functools.partial(dilated_deeplabv3plus, stride) for stride in DILATED}
    return _common.build_model(name, height, width, builders)


def parse_list(text, kind=str):
    return [kind(item) for item in text.split(",") if item]


# ----------------------------------------------------------------------------- macs (TensorFlow)

def macs_command(args):
    from spgnet_keras.profiler import count_macs, count_params

    stored = json.loads(MACS_JSON.read_text()) if MACS_JSON.exists() else {}
    for size in parse_list(args.sizes):
        height, width = _common.parse_size(size)
        for name in parse_list(args.models):
            keras.backend.clear_session()
            model = build_model(name, height, width)
            stored[f"{name}:{height}x{width}"] = {"macs": count_macs(model, height, width),
                                                  "params": count_params(model)}
            print(name, size, stored[f"{name}:{height}x{width}"], flush=True)
    MACS_JSON.parent.mkdir(parents=True, exist_ok=True)
    MACS_JSON.write_text(json.dumps(stored, indent=2, sort_keys=True))


# ----------------------------------------------------------------------------- GPU machine

def device_description():
    import jax

    info = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "python": platform.python_version(), "keras": keras.__version__, "backend": keras.backend.backend(),
            "jax": jax.__version__, "devices": [str(d) for d in jax.devices()], "cpus": os.cpu_count()}
    try:
        info["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                      "--format=csv,noheader"], capture_output=True, text=True,
                                     timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["gpu"] = "unknown"
    info["commit"] = os.environ.get("SPGNET_COMMIT", "unknown")  # the GPU machine gets a tree without .git
    return info


def make_forward(model):
    """A jitted inference call of `model` with its weights as arguments (no retrace per call)."""
    import jax

    @jax.jit
    def forward(trainable, non_trainable, x):
        outputs, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return outputs

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    return lambda x: forward(trainable, non_trainable, x)


def timed(run, x):
    start = time.perf_counter()
    run(x).block_until_ready()
    return time.perf_counter() - start


def inference_cells(models, height, width, batches, dtype, rounds, warmup, log):
    """[{batch, models: {name: {median, times, compile_s}}}] for one (size, dtype); each model built once."""
    import jax

    keras.mixed_precision.set_global_policy(dtype)
    runners = {}
    for name in models:
        keras.backend.clear_session()
        runners[name] = make_forward(build_model(name, height, width))
    cells = []
    for batch in batches:
        x = jax.random.normal(jax.random.PRNGKey(batch), (batch, height, width, 3), "float32")
        compile_s = {}
        for name in models:
            compile_s[name] = timed(runners[name], x)
            for _ in range(warmup):
                timed(runners[name], x)
            log(f"  {name} {height}x{width} b{batch} {dtype}: first call (compile) {compile_s[name]:.1f} s")
        times = {name: [] for name in models}
        for _ in range(rounds):
            for name in models:
                times[name].append(timed(runners[name], x))
        cells.append({"height": height, "width": width, "batch": batch, "dtype": dtype, "models": {
            name: {"median": statistics.median(t), "times": t, "compile_s": compile_s[name]}
            for name, t in times.items()}})
    keras.mixed_precision.set_global_policy("float32")
    return cells


def inference_command(args):
    out = Path(args.out)
    result = {"device": device_description(), "command": args.command_line or " ".join(sys.argv), "cells": []}
    start = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - start:6.0f} s] {message}", flush=True)

    models = parse_list(args.models)
    for dtype in parse_list(args.dtypes):
        for size in parse_list(args.sizes):
            if time.perf_counter() - start > args.budget:
                log(f"budget of {args.budget} s reached; skipping {size} {dtype}")
                continue
            height, width = _common.parse_size(size)
            for cell in inference_cells(models, height, width, parse_list(args.batches, int), dtype,
                                        args.rounds, args.warmup, log):
                result["cells"].append(cell)
                log(f"{size} b{cell['batch']} {dtype}: " + ", ".join(
                    f"{n} {1000 * c['median']:.2f} ms" for n, c in cell["models"].items()))
            out.write_text(json.dumps(result, indent=2))
    result["seconds"] = time.perf_counter() - start
    out.write_text(json.dumps(result, indent=2))


def cost_command(args):
    """XLA's cost analysis of each model's compiled forward pass: flops and bytes accessed.

    Compiles only (nothing runs), so it works on the CPU: bytes per MAC shows which models
    are memory-bound on a GPU whose arithmetic is ~100x faster than its memory per byte.
    """
    import jax

    rows = {}
    height, width = _common.parse_size(args.size)
    keras.mixed_precision.set_global_policy(args.dtype)
    for name in parse_list(args.models) if args.models else []:
        keras.backend.clear_session()
        model = build_model(name, height, width)

        def forward(trainable, non_trainable, x, model=model):
            return model.stateless_call(trainable, non_trainable, x, training=False)[0]

        x = jax.ShapeDtypeStruct((args.batch, height, width, 3), "float32")
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        analysis = jax.jit(forward).lower(trainable, non_trainable, x).compile().cost_analysis()
        analysis = analysis[0] if isinstance(analysis, list) else analysis
        rows[name] = {"flops": float(analysis.get("flops", 0.0)),
                      "bytes_accessed": float(analysis.get("bytes accessed", 0.0))}
        print(f"{name}: {rows[name]['flops'] / 2e9:.1f} GMAC-equivalent flops/2, "
              f"{rows[name]['bytes_accessed'] / 1e9:.2f} GB accessed, "
              f"{rows[name]['flops'] / 2 / max(rows[name]['bytes_accessed'], 1):.0f} MAC/byte", flush=True)
    result = {"device": [str(d) for d in jax.devices()], "size": args.size, "batch": args.batch,
              "dtype": args.dtype, "command": args.command_line or " ".join(sys.argv), "models": rows,
              "logits_upsampling": upsampling_cost(args.batch, height, width)}
    Path(args.out).write_text(json.dumps(result, indent=2))


def upsampling_cost(batch, height, width, factor=4, channels=NUM_CLASSES):
    """XLA flops of upsampling stride-4 logits to the input size: jax.image.resize vs slices and adds."""
    import jax

    from spgnet_keras.layers.resize import upsample_by_integer_factors

    logits = jax.ShapeDtypeStruct((batch, height // factor, width // factor, channels), "float32")
    candidates = {
        "jax.image.resize": lambda x: jax.image.resize(x, (batch, height, width, channels), "linear",
                                                       antialias=False),
        "upsample_by_integer_factors": lambda x: upsample_by_integer_factors(x, factor, factor),
    }
    result = {}
    for name, function in candidates.items():
        analysis = jax.jit(function).lower(logits).compile().cost_analysis()
        analysis = analysis[0] if isinstance(analysis, list) else analysis
        result[name] = float(analysis.get("flops", 0.0))
        print(f"logits upsampling x{factor} to {height}x{width}, batch {batch}, {name}: "
              f"{result[name] / 1e9:.1f} GFLOP", flush=True)
    return result


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):  # logs hold Python floats here: the epoch's work is done
        self.seconds.append(time.perf_counter() - self._start)


LOSSES = {
    "keras": "Keras' cross-entropy (`ignore_class=255`), stage 1 weighted 0.4, SGD 0.01 with momentum",
    "recipe_ohem": "the package's recipe (`recipe_compile_arguments`): `SegmentationCrossEntropy` with the "
                   "paper's OHEM (`config.paper_ohem_loss`: threshold 0.7, 12500 pixels per 768x768 image) on "
                   "every output, stage weight 1, SGD 0.01 momentum 0.9 with coupled weight decay, poly schedule",
}


def compile_for_speed(model, loss_kind, height, width, total_steps):
    """`model.compile` with the loss and optimizer of `LOSSES[loss_kind]`."""
    names = list(model.output)
    if loss_kind == "recipe_ohem":
        from spgnet_keras.config import OptimizerConfig, paper_ohem_loss
        from spgnet_keras.recipe import recipe_compile_arguments

        arguments = recipe_compile_arguments(model, OptimizerConfig(learning_rate=0.01),
                                             paper_ohem_loss((height, width)), total_steps)
        model.compile(**{**arguments, "metrics": None})
        return
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss={n: loss for n in names},
                  loss_weights={n: (1.0 if n == PREDICTION else 0.4) for n in names})


def train_run(height, width, batch, dtype, deep_supervision, steps, epochs, loss_kind="keras"):
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(dtype)
    model = SPGNet.from_preset("spgnet_r50x2_256", NUM_CLASSES, image_shape=(height, width, 3))
    if not deep_supervision:
        model = keras.Model(model.input, {PREDICTION: model.output[PREDICTION]})
    names = list(model.output)
    compile_for_speed(model, loss_kind, height, width, steps * epochs)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(steps * batch, height, width, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, size=(steps * batch, height, width, 1)).astype("int32")
    labels[:, :16] = 255  # some ignored pixels, as in real masks
    timer = EpochTimer()
    history = model.fit(images, {n: labels for n in names}, batch_size=batch, epochs=epochs, shuffle=False,
                        verbose=0, callbacks=[timer])
    keras.mixed_precision.set_global_policy("float32")
    timed_epochs = timer.seconds[1:]
    images_per_s = [steps * batch / s for s in timed_epochs]
    return {"dtype": dtype, "deep_supervision": deep_supervision, "loss": loss_kind, "outputs": names,
            "steps_per_epoch": steps,
            "epochs": epochs, "epoch_seconds": timer.seconds, "images_per_s": statistics.median(images_per_s),
            "images_per_s_all": images_per_s, "final_loss": float(history.history["loss"][-1])}


def train_command(args):
    out = Path(args.out)
    height, width = _common.parse_size(args.size)
    result = {"device": device_description(), "command": args.command_line or " ".join(sys.argv), "height": height, "width": width,
              "batch": args.batch, "runs": []}
    start = time.perf_counter()
    supervision = (True,) if args.deep_supervision_only else (True, False)
    cells = [(d, loss, ds) for d in parse_list(args.dtypes) for loss in parse_list(args.losses) for ds in supervision]
    for dtype, loss_kind, deep_supervision in cells:
        if loss_kind not in LOSSES:
            raise SystemExit(f"unknown --losses entry {loss_kind!r}; expected {sorted(LOSSES)}")
    for dtype, loss_kind, deep_supervision in cells:
        if time.perf_counter() - start > args.budget:
            print(f"budget of {args.budget} s reached; skipping {dtype} {loss_kind} ds={deep_supervision}", flush=True)
            continue
        run = train_run(height, width, args.batch, dtype, deep_supervision, args.steps, args.epochs, loss_kind)
        result["runs"].append(run)
        print(f"[{time.perf_counter() - start:6.0f} s] {dtype} {loss_kind} ds={deep_supervision}: "
              f"{run['images_per_s']:.1f} img/s, epochs {[round(s, 2) for s in run['epoch_seconds']]}, "
              f"loss {run['final_loss']:.3f}", flush=True)
        out.write_text(json.dumps(result, indent=2))
    out.write_text(json.dumps(result, indent=2))


# ----------------------------------------------------------------------------- render

def device_markdown(device, command):
    return "\n".join([
        f"- Command: `{command}`",
        f"- Date: {device['date']}; GPU: {device['gpu']} (`device` tool, nvidia-h100-x1), {device['cpus']} CPUs",
        f"- Versions: python {device['python']}, keras {device['keras']} (backend {device['backend']}), "
        f"jax {device['jax']}; commit {device['commit']}",
    ])


def inference_markdown(data, macs):
    lines = ["## GPU inference speed (H100, Keras JAX backend)", "", device_markdown(data["device"], data["command"]),
             "", "Random weights, 19 classes, fixed input shape, one `jax.jit` per model; latency = median of "
             "interleaved rounds after a warm-up (compile time not counted). MACs from `python "
             "benchmarks/gpu_speed.py macs` (TensorFlow graph, batch 1). `float32` lets XLA use TF32 "
             "matrix units for convolutions (JAX's default precision); `mixed_bfloat16` is Keras' "
             "mixed-precision policy (bf16 compute, float32 weights, float32 logits).", ""]
    for cell in data["cells"]:
        h, w, b, dtype = cell["height"], cell["width"], cell["batch"], cell["dtype"]
        lines += [f"### {h}x{w}, batch {b}, `{dtype}`", "",
                  "| Model | Params | GMACs / image | Latency (ms) | min-max (ms) | Images/s | Achieved TMAC/s |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        rates = {}
        for name, timing in cell["models"].items():
            info = macs.get(f"{name}:{h}x{w}")
            median = timing["median"]
            rate = info["macs"] * b / median / 1e12 if info else None
            rates[name] = rate
            lines.append(
                f"| {LABELS[name]} | {info['params'] / 1e6:.1f} M | {info['macs'] / 1e9:.1f} | {1000 * median:.2f} | "
                f"{1000 * min(timing['times']):.2f}-{1000 * max(timing['times']):.2f} | {b / median:.1f} | "
                f"{rate:.1f} |" if info else
                f"| {LABELS[name]} | - | - | {1000 * median:.2f} | - | {b / median:.1f} | - |")
        lines.append("")
        reference = rates.get("resnet50")
        for name in SPGNET_MODELS:
            if reference and rates.get(name):
                lines.append(f"- {LABELS[name]} achieved MACs/s = **{100 * rates[name] / reference:.0f} %** of "
                             f"ResNet-50's (goal >= 90 %)")
        models = cell["models"]
        for os_ in (8, 16):
            peer = f"deeplabv3plus_r101_os{os_}"
            if "spgnet_r50x2_256" in models and peer in models:
                ratio = models["spgnet_r50x2_256"]["median"] / models[peer]["median"]
                goal = " (goal <= 0.5)" if os_ == 8 else ""
                lines.append(f"- Latency SPGNet 2xR50-256 / DeepLabV3+ R101 OS{os_} = **{ratio:.2f}**{goal}")
        lines.append("")
    return "\n".join(lines)


def training_markdown(data, before=None):
    lines = ["## GPU training speed (H100, Keras JAX backend)", "", device_markdown(data["device"], data["command"]),
             "", f"SPGNet 2xR50, D=256, {data['height']}x{data['width']} crops, batch {data['batch']}, "
             "`model.fit` on in-memory random images and labels (some pixels 255), SGD with momentum; "
             "cross-entropy with `ignore_class=255` (Keras' loss: the package's OHEM loss is TensorFlow "
             "code, its overhead is measured on the CPU above). The first epoch (compilation) is not "
             "timed; images/s = median over the timed epochs.", "",
             "| Commit | Dtype policy | Outputs (loss weights) | Steps / epoch | Epoch times (s) | Images/s | Final loss |",
             "|---|---|---|---:|---|---:|---:|"]
    for source in [data] + ([before] if before else []):
        for run in source["runs"]:
            outputs = " + ".join(f"{n} ({1.0 if n == PREDICTION else 0.4})" for n in run["outputs"])
            epochs = ", ".join(f"{s:.2f}" for s in run["epoch_seconds"])
            lines.append(f"| {source['device']['commit']} | `{run['dtype']}` | {outputs} | {run['steps_per_epoch']} | "
                         f"{epochs} | {run['images_per_s']:.1f} | {run['final_loss']:.3f} |")
    if before:
        lines += ["", f"Rows of commit {before['device']['commit']} ({before['device']['date']}, command "
                  f"`{before['command']}`) ran before the resize change above (`ResizeLike` on JAX used "
                  "`jax.image.resize`); they are the only float32 training numbers."]
    lines.append("")
    by_key = {(r["dtype"], r["deep_supervision"]): r["images_per_s"] for r in data["runs"]}
    for dtype in dict.fromkeys(r["dtype"] for r in data["runs"]):
        if (dtype, True) in by_key and (dtype, False) in by_key:
            overhead = by_key[(dtype, False)] / by_key[(dtype, True)] - 1
            lines.append(f"- `{dtype}`: deep supervision step-time overhead {100 * overhead:+.1f} % "
                         f"({by_key[(dtype, True)]:.1f} vs {by_key[(dtype, False)]:.1f} img/s)")
        if (dtype, True) in by_key:
            lines.append(f"- `{dtype}`: 2xR50-256 at {data['height']}x{data['width']}, batch {data['batch']}, "
                         f"with deep supervision: **{by_key[(dtype, True)]:.1f} img/s** (goal >= 40 img/s on an H100)")
    return "\n".join(lines)


def comparison_markdown(before, after, macs):
    """Latency and achieved MACs/s of two runs side by side (a change measured on the same kind of card)."""
    lines = [f"Before -> after, same card kind, same command (before: commit {before['device']['commit']}, "
             f"{before['device']['date']}):", "",
             "| Size, batch | Model | Latency before (ms) | Latency after (ms) | MACs/s vs ResNet-50 before | after |",
             "|---|---|---:|---:|---:|---:|"]
    after_cells = {(c["height"], c["width"], c["batch"], c["dtype"]): c for c in after["cells"]}
    for cell in before["cells"]:
        key = (cell["height"], cell["width"], cell["batch"], cell["dtype"])
        if key not in after_cells:
            continue
        h, w, b, _ = key
        share = {}
        for run, data in (("before", cell), ("after", after_cells[key])):
            rate = {n: macs[f"{n}:{h}x{w}"]["macs"] / t["median"] for n, t in data["models"].items()}
            share[run] = {n: r / rate["resnet50"] for n, r in rate.items()}
        for name in cell["models"]:
            if name == "resnet50":
                continue
            lines.append(f"| {h}x{w}, b{b} | {LABELS[name]} | {1000 * cell['models'][name]['median']:.2f} | "
                         f"{1000 * after_cells[key]['models'][name]['median']:.2f} | "
                         f"{100 * share['before'][name]:.0f} % | {100 * share['after'][name]:.0f} % |")
    return "\n".join(lines)


def render_command(args):
    import _common

    macs = json.loads(MACS_JSON.read_text())
    if args.inference:
        data = json.loads(Path(args.inference).read_text())
        markdown = inference_markdown(data, macs)
        if args.inference_before:
            before = json.loads(Path(args.inference_before).read_text())
            markdown += "\n" + comparison_markdown(before, data, macs)
        _common.write_section("gpu-inference", markdown)
    if args.training:
        data = json.loads(Path(args.training).read_text())
        before = json.loads(Path(args.training_before).read_text()) if args.training_before else None
        _common.write_section("gpu-training", training_markdown(data, before))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    macs = sub.add_parser("macs", help="params and MACs (TensorFlow backend)")
    macs.add_argument("--sizes", default="512x1024,1024x2048")
    macs.add_argument("--models", default=",".join(ALL_MODELS))
    inference = sub.add_parser("inference", help="GPU inference latency (JAX backend)")
    inference.add_argument("--sizes", default="512x1024,1024x2048")
    inference.add_argument("--batches", default="1,8")
    inference.add_argument("--models", default=",".join(ALL_MODELS))
    inference.add_argument("--rounds", type=int, default=20)
    inference.add_argument("--warmup", type=int, default=2)
    train = sub.add_parser("train", help="GPU fit() images/s (JAX backend)")
    train.add_argument("--size", default="769x769")
    train.add_argument("--batch", type=int, default=8)
    train.add_argument("--steps", type=int, default=16, help="steps per epoch")
    train.add_argument("--epochs", type=int, default=3, help="the first is not timed")
    train.add_argument("--losses", default="keras", help=f"comma list of {sorted(LOSSES)}")
    train.add_argument("--deep-supervision-only", action="store_true", help="skip the one-output runs")
    for command, budget, what in ((inference, 480, "cells"), (train, 420, "runs")):
        command.add_argument("--dtypes", default="mixed_bfloat16,float32")
        command.add_argument("--budget", type=float, default=budget, help=f"seconds; later {what} are skipped")
        command.add_argument("--out", required=True)
    cost = sub.add_parser("cost", help="XLA cost analysis (flops, bytes accessed) of each forward pass (JAX)")
    cost.add_argument("--size", default="512x1024")
    cost.add_argument("--batch", type=int, default=1)
    cost.add_argument("--dtype", default="mixed_bfloat16")
    cost.add_argument("--models", default=",".join(ALL_MODELS))
    cost.add_argument("--out", default=str(RESULTS / "gpu_cost.json"))
    for command in (inference, train, cost):
        command.add_argument("--command-line", help="the command to show in the docs (default: argv)")
    render = sub.add_parser("render", help="docs sections from stored JSONs")
    render.add_argument("--inference")
    render.add_argument("--inference-before", help="an earlier inference JSON to compare with")
    render.add_argument("--training")
    render.add_argument("--training-before", help="an earlier training JSON to list below")
    args = parser.parse_args(argv)
    if args.command != "render" and args.command != "macs" and keras.backend.backend() != "jax":
        parser.error(f"`{args.command}` runs on the JAX backend: set KERAS_BACKEND=jax "
                     f"(got {keras.backend.backend()!r}).")
    {"macs": macs_command, "inference": inference_command, "train": train_command, "cost": cost_command,
     "render": render_command}[args.command](args)


if __name__ == "__main__":
    main()
