"""Inference latency, images/s, MACs and achieved MACs/s of SPGNet beside reference models.

Models (19 classes, float32, random weights; fixed input shapes):

- `resnet50`: `keras.applications.ResNet50(include_top=False, weights=None)`, the
  machine's practical conv throughput (plain, large, well-shaped convolutions).
- `spgnet_r18x1_128`, `spgnet_r18x2_128`, `spgnet_r50x2_256`: SPGNet presets; only
  the `"prediction"` output is fetched (the deep-supervision outputs are training-only).
- `kcv_deeplabv3plus_r50` / `kcv_deeplabv3plus_r101`: keras-cv `DeepLabV3Plus` on a
  keras-cv `ResNetBackbone` (V1, offline constructor, no weights). keras-cv's model
  takes the stride-32 feature (no dilation: encoder output stride 32), ASPP rates 6/12/18,
  a 1x1 256 head and a softmax.
- `deeplabv3plus_r101_os16` / `deeplabv3plus_r101_os8`: dilated DeepLabV3+ built here
  (keras-cv's `DeepLabV3Plus` fails on a dilated backbone, see design/pitfalls.md) on a
  keras-cv `ResNetV2Backbone` (ResNet-101 V2, `stackwise_dilations` (1,1,1,2) for OS16
  and (1,1,2,4) for OS8): keras-cv `SpatialPyramidPooling` (256 channels, rates 6/12/18
  at OS16, 12/24/36 at OS8, image pooling), the stride-4 feature projected to 48 channels,
  concatenation, two 3x3 256 convs (the DeepLabV3+ paper's decoder), a 1x1 classifier and
  a bilinear upsampling to the input size.

Each model is called through `tf.function(jit_compile=False)`; every model gets warm-up
calls, then the models are timed in interleaved rounds (one call of each per round) and the
median is reported, so load changes on the shared CPU hit all models alike.

MACs: `spgnet_keras.profiler.count_macs` (conv/matmul multiply-accumulates of the traced
graph, batch 1). Achieved MACs/s = MACs x batch / median latency.

`--profile` adds a per-op-type time breakdown (TensorFlow profiler, `tf.profiler.experimental`,
op events of the timed `tf.function` read from the XSpace protobuf) of SPGNet and ResNet-50 at the first size,
batch 1: where SPGNet's time goes when its MACs/s is below ResNet-50's.

Examples::

    python benchmarks/inference_speed.py --sizes 512x1024 --batches 1,4
    python benchmarks/inference_speed.py --sizes 1024x2048 --batches 1,2 --repeats 3 --budget 600
    python benchmarks/inference_speed.py --quick
"""

from __future__ import annotations

import argparse
import functools
import gc
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.setup_tensorflow_logging()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from spgnet_keras.layers.resize import ResizeLike  # noqa: E402
from spgnet_keras.profiler import count_macs, count_params  # noqa: E402

NUM_CLASSES, SPGNET_MODELS = _common.NUM_CLASSES, _common.SPGNET_MODELS
ALL_MODELS = ("resnet50", *SPGNET_MODELS, "kcv_deeplabv3plus_r50", "kcv_deeplabv3plus_r101",
              "deeplabv3plus_r101_os16", "deeplabv3plus_r101_os8")
LABELS = {
    **_common.MODEL_LABELS,
    "kcv_deeplabv3plus_r50": "keras-cv DeepLabV3+ R50 (OS32)",
    "kcv_deeplabv3plus_r101": "keras-cv DeepLabV3+ R101 (OS32)",
    "deeplabv3plus_r101_os16": "DeepLabV3+ R101-V2, OS16 (dilated)",
    "deeplabv3plus_r101_os8": "DeepLabV3+ R101-V2, OS8 (dilated)",
}
BLOCKS = {"resnet50": [3, 4, 6, 3], "resnet101": [3, 4, 23, 3]}


# ----------------------------------------------------------------------------- models


def conv_bn_relu(x, filters, kernel, name):
    x = keras.layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def dilated_deeplabv3plus(output_stride, input_shape, num_classes=NUM_CLASSES):
    """DeepLabV3+ (Chen et al. 2018) on a dilated keras-cv ResNet-101 V2."""
    import keras_cv

    dilations, rates = {16: ([1, 1, 1, 2], [6, 12, 18]), 8: ([1, 1, 2, 4], [12, 24, 36])}[output_stride]
    backbone = keras_cv.models.ResNetV2Backbone(
        stackwise_filters=[64, 128, 256, 512], stackwise_blocks=BLOCKS["resnet101"], stackwise_strides=[1, 2, 2, 2],
        stackwise_dilations=dilations, include_rescaling=False, input_shape=input_shape, block_type="block",
    )
    inputs = backbone.input
    low = backbone.get_layer(backbone.pyramid_level_inputs["P2"]).output
    high = backbone.output
    x = keras_cv.layers.SpatialPyramidPooling(dilation_rates=rates, num_channels=256, name="aspp")(high)
    low = conv_bn_relu(low, 48, 1, "low_level")
    x = ResizeLike(name="aspp_upsample")([x, low])
    x = keras.layers.Concatenate(name="decoder_concat")([x, low])
    x = conv_bn_relu(x, 256, 3, "decoder1")
    x = conv_bn_relu(x, 256, 3, "decoder2")
    x = keras.layers.Conv2D(num_classes, 1, name="classifier")(x)
    x = ResizeLike(name="logits_upsample")([x, inputs])
    return keras.Model(inputs, x, name=f"deeplabv3plus_r101_os{output_stride}")


def keras_cv_deeplabv3plus(depth, input_shape, num_classes=NUM_CLASSES):
    import keras_cv

    backbone = keras_cv.models.ResNetBackbone(
        stackwise_filters=[64, 128, 256, 512], stackwise_blocks=BLOCKS[depth], stackwise_strides=[1, 2, 2, 2],
        include_rescaling=False, input_shape=input_shape, block_type="block",
    )
    return keras_cv.models.DeepLabV3Plus(backbone=backbone, num_classes=num_classes)


def build_model(name, height, width):
    """`_common.build_model` with the keras-cv and dilated DeepLabV3+ models built here."""
    builders = {
        "kcv_deeplabv3plus_r50": functools.partial(keras_cv_deeplabv3plus, "resnet50"),
        "kcv_deeplabv3plus_r101": functools.partial(keras_cv_deeplabv3plus, "resnet101"),
        "deeplabv3plus_r101_os16": functools.partial(dilated_deeplabv3plus, 16),
        "deeplabv3plus_r101_os8": functools.partial(dilated_deeplabv3plus, 8),
    }
    return _common.build_model(name, height, width, builders)


# ----------------------------------------------------------------------------- timing


def make_runner(model):
    @tf.function(jit_compile=False)
    def run(x):
        return model(x, training=False)

    return run


def timed_call(runner, x):
    start = time.perf_counter()
    out = runner(x)
    # CPU execution is synchronous; touching one element makes sure the result exists.
    _ = out[0, 0, 0, 0].numpy()
    return time.perf_counter() - start


def benchmark_cell(runners, height, width, batch, repeats, budget, warmup, machine, skip, log):
    """Median latencies {model: (median_s, [times])} for one (size, batch) cell."""
    x = tf.random.normal((batch, height, width, 3), seed=1)
    active = [n for n in runners if f"{n}:{height}x{width}:{batch}" not in skip]
    for name in active:
        for _ in range(warmup):
            t = timed_call(runners[name], x)
            log(f"  warm-up {name} {height}x{width} b{batch}: {t:.3f} s")
    times = defaultdict(list)
    start = time.perf_counter()
    for round_index in range(repeats):
        for name in active:
            times[name].append(timed_call(runners[name], x))
        machine.sample_load()
        elapsed = time.perf_counter() - start
        log(f"  round {round_index + 1}/{repeats} ({elapsed:.0f} s): "
            + ", ".join(f"{n} {times[n][-1]:.3f}" for n in active))
        if budget and elapsed > budget and round_index + 1 >= 2:
            log(f"  budget of {budget} s reached after {round_index + 1} rounds")
            break
    return {name: (_common.median(times[name]), times[name]) for name in active}


# ----------------------------------------------------------------------------- profile

def op_type_profile(model, height, width, runs=3, logdir=None):
    """{op type: summed micros per call} from the TensorFlow profiler, op counts, median wall time.

    Runs the same `tf.function(jit_compile=False)` path as the timing under
    `tf.profiler.experimental` and sums the durations of the op events ("name:type") on the
    executor threads of the host plane (XSpace protobuf).
    """
    import glob
    import tempfile

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    runner = make_runner(model)
    x = tf.random.normal((1, height, width, 3), seed=2)
    for _ in range(2):
        timed_call(runner, x)
    logdir = logdir or tempfile.mkdtemp(prefix="spgnet_profile_")
    walls = []
    tf.profiler.experimental.start(logdir)
    try:
        for _ in range(runs):
            walls.append(timed_call(runner, x))
    finally:
        tf.profiler.experimental.stop()
    path = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(path).read_bytes())
    totals, counts, group_times = defaultdict(float), defaultdict(int), defaultdict(float)
    for plane in space.planes:
        if not plane.name.startswith("/host"):
            continue
        for line in plane.lines:
            if line.name == "python":
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name:
                    continue
                op_name, op = name.rsplit(":", 1)
                micros = event.duration_ps / 1e6 / runs
                totals[op] += micros
                counts[op] += 1
                group = component(op_name)
                group_times[(group, "conv" if "Conv" in op else "other")] += micros
    counts = {op: round(c / runs) for op, c in counts.items()}
    return dict(totals), counts, _common.median(walls), dict(group_times)


_SPGNET_PART = re.compile(r"stage\d+_(stem|stack(\d)|gap|upsample(\d)|head|csfa\d|spg|se|ge|none|classifier)")
_RESNET_PART = re.compile(r"(?:^|/)conv(\d)_")


def component(op_name):
    """Which part of the network an op belongs to, from its layer-name scope."""
    match = _SPGNET_PART.search(op_name)
    if match:
        kind = match.group(1)
        if kind == "stem":
            return "encoder stem (stride 2-4)"
        if kind.startswith("stack"):
            return f"encoder stride {4 * 2 ** (int(match.group(2)) - 1)}"
        if kind.startswith("upsample"):
            return f"decoder stride {4 * 2 ** (int(match.group(3)) - 1)}"
        if kind == "head":
            return "decoder stride 4"
        if kind == "gap":
            return "decoder stride 32"
        if kind.startswith("csfa"):
            return "cross-stage aggregation"
        if kind == "classifier":
            return "classifier + resize"
        return "stage transition (SPG/SE/GE)"
    match = _RESNET_PART.search(op_name)
    if match:
        level = int(match.group(1))
        return "encoder stem (stride 2-4)" if level == 1 else f"encoder stride {4 * 2 ** (level - 2)}"
    if "prediction" in op_name:
        return "classifier + resize"
    return "other"


def macs_by_component(model, height, width):
    """{component: MACs} of a batch-1 forward pass (the ops `count_macs` counts)."""
    from spgnet_keras.profiler import _MATMUL_OPS, _op_macs

    spec = tf.TensorSpec((1, height, width, 3), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    result = defaultdict(int)
    for op in graph.get_operations():
        if op.type in _MATMUL_OPS:
            result[component(op.name)] += _op_macs(op)
    return dict(result)


def profile_markdown(profiles, height, width):
    lines = [
        f"### Per-op-type time at {height}x{width}, batch 1 (TensorFlow profiler)",
        "",
        "Op times per call (mean of 3 profiled calls of the timed `tf.function`) by op type after "
        "Grappler/oneDNN rewriting; "
        "ops of one graph can overlap on the 2 cores, so shares are of the summed op time, not of "
        "the wall time. Convolutions appear as `_MklNative*Conv2D` (oneDNN; Grappler fuses "
        "conv + bias (+ ReLU)); BatchNorm runs as `Mul` + `AddV2`/`AddN`; `ResizeBilinear` is the decoder's bilinear upsampling.",
        "",
    ]
    names = list(profiles)
    all_ops = defaultdict(float)
    for name in names:
        summary = profiles[name]["ops"]
        total = sum(summary.values())
        for op, micros in summary.items():
            all_ops[op] = max(all_ops[op], micros / total)
    top = sorted(all_ops, key=lambda op: -all_ops[op])[:14]
    header = "| Op type | " + " | ".join(f"{LABELS[n]}: ms (share)" for n in names) + " |"
    lines += [header, "|---|" + "---:|" * len(names)]
    for op in top:
        cells = []
        for name in names:
            summary = profiles[name]["ops"]
            total = sum(summary.values())
            micros = summary.get(op, 0.0)
            count = profiles[name]["counts"].get(op, 0)
            cells.append(f"{micros / 1e3:.0f} ({100 * micros / total:.1f} %, {count} ops)" if micros else "-")
        lines.append(f"| `{op}` | " + " | ".join(cells) + " |")
    totals = []
    for name in names:
        summary = profiles[name]["ops"]
        totals.append(f"{sum(summary.values()) / 1e3:.0f} ms summed; wall {1e3 * profiles[name]['wall']:.0f} ms")
    lines.append("| **total** | " + " | ".join(totals) + " |")
    conv_lines = []
    for name in names:
        summary = profiles[name]["ops"]
        total = sum(summary.values())
        conv = sum(v for op, v in summary.items() if "Conv" in op or "MatMul" in op)
        macs = profiles[name]["macs"]
        conv_lines.append(
            f"- {LABELS[name]}: convolutions take {100 * conv / total:.1f} % of the summed op time; MACs per "
            f"conv-second {macs / (conv / 1e6) / 1e9:.1f} G/s; everything else (resize, add, multiply, "
            f"pooling, sigmoid, copies) {100 * (total - conv) / total:.1f} %."
        )
    lines += ["", *conv_lines, ""]
    for name in names:
        group_macs = profiles[name]["group_macs"]
        group_times = profiles[name]["group_times"]
        groups = sorted(set(group_macs) | {k.split("|")[0] for k in group_times}, key=_group_order)
        lines += [f"{LABELS[name]} by part of the network (conv ops: time and achieved rate; other ops: time):", "",
                  "| Part | GMACs | conv ms | conv GMAC/s | other ops ms |", "|---|---:|---:|---:|---:|"]
        for group in groups:
            m = group_macs.get(group, 0)
            conv = group_times.get(f"{group}|conv", 0.0)
            other = group_times.get(f"{group}|other", 0.0)
            rate = f"{m / (conv / 1e6) / 1e9:.1f}" if conv and m else "-"
            lines.append(f"| {group} | {m / 1e9:.2f} | {conv / 1e3:.0f} | {rate} | {other / 1e3:.0f} |")
        lines.append("")
    return "\n".join(lines)


def _group_order(group):
    order = ["encoder stem", "encoder stride 4", "encoder stride 8", "encoder stride 16", "encoder stride 32",
             "cross-stage", "decoder stride 32", "decoder stride 16", "decoder stride 8", "decoder stride 4",
             "stage transition", "classifier", "other"]
    for index, prefix in enumerate(order):
        if group.startswith(prefix):
            return (index, group)
    return (len(order), group)


# ----------------------------------------------------------------------------- report


def results_markdown(args, machine, cells, macs, params, notes):
    size_text = ", ".join(f"{h}x{w}" for h, w in args.sizes)
    lines = [f"## Inference speed at {size_text}", "", machine.markdown(), ""]
    lines += [
        "Float32, `tf.function(jit_compile=False)`, random weights, 19 classes, fixed input shape; latency = median "
        "of the interleaved rounds (n = number of timed calls; warm-up calls not counted). MACs from "
        "`spgnet_keras.profiler.count_macs` at batch 1; achieved MACs/s = MACs x batch / latency. "
        "SPGNet: only the final `prediction` output is computed.",
        "",
    ]
    for (height, width, batch), result in cells.items():
        lines += [f"### {height}x{width}, batch {batch}", ""]
        lines += ["| Model | Params | GMACs / image | Latency (s) | n | min-max (s) | Images/s | Achieved GMAC/s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, (latency, times) in result.items():
            m = macs[(name, height, width)]
            lines.append(
                f"| {LABELS[name]} | {params[name] / 1e6:.1f} M | {m / 1e9:.1f} | {latency:.3f} | {len(times)} | "
                f"{min(times):.3f}-{max(times):.3f} | {batch / latency:.2f} | {m * batch / latency / 1e9:.1f} |"
            )
        lines.append("")
        ratio_lines = ratios(result, macs, height, width, batch)
        if ratio_lines:
            lines += ratio_lines + [""]
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def ratios(result, macs, height, width, batch):
    """Goal ratios from the median latencies, and the same from the fastest call of each model
    (the least disturbed by other jobs on a shared machine)."""
    lines = []
    fastest = {name: min(times) for name, (_, times) in result.items()}
    median = {name: latency for name, (latency, _) in result.items()}
    if "resnet50" in result:
        for name in SPGNET_MODELS:
            if name in result:
                values = []
                for latencies in (median, fastest):
                    base_rate = macs[("resnet50", height, width)] / latencies["resnet50"]
                    values.append(macs[(name, height, width)] / latencies[name] / base_rate)
                verdict = "meets" if values[0] >= 0.9 else "misses"
                lines.append(f"- {LABELS[name]} achieved MACs/s = **{100 * values[0]:.0f} %** of ResNet-50's "
                             f"({verdict} the >= 90 % goal); from the fastest calls: {100 * values[1]:.0f} %")
    if "spgnet_r50x2_256" in result and "deeplabv3plus_r101_os8" in result:
        ratio = median["spgnet_r50x2_256"] / median["deeplabv3plus_r101_os8"]
        best = fastest["spgnet_r50x2_256"] / fastest["deeplabv3plus_r101_os8"]
        verdict = "meets" if ratio <= 0.5 else "misses"
        mac_ratio = macs[("spgnet_r50x2_256", height, width)] / macs[("deeplabv3plus_r101_os8", height, width)]
        lines.append(f"- Latency SPGNet 2xR50-256 / DeepLabV3+ R101 OS8 = **{ratio:.2f}** ({verdict} the <= 0.5 "
                     f"goal); from the fastest calls: {best:.2f}; MACs ratio {mac_ratio:.2f}")
    if "spgnet_r50x2_256" in result and "deeplabv3plus_r101_os16" in result:
        ratio = median["spgnet_r50x2_256"] / median["deeplabv3plus_r101_os16"]
        best = fastest["spgnet_r50x2_256"] / fastest["deeplabv3plus_r101_os16"]
        lines.append(f"- Latency SPGNet 2xR50-256 / DeepLabV3+ R101 OS16 = {ratio:.2f} (fastest calls: {best:.2f})")
    return lines


def render_stored(json_path, section, write_doc):
    """Re-renders a section from its stored JSON (no timing)."""
    import json

    payload = json.loads(Path(json_path).read_text())
    machine = _common.Machine.from_dict(payload["machine"], command=payload["command"])
    cells = {}
    for key, result in payload["cells"].items():
        size, batch = key.split(":b")
        height, width = _common.parse_size(size)
        cells[(height, width, int(batch))] = {n: (v["median_s"], v["times_s"]) for n, v in result.items()}
    macs = {}
    for key, value in payload["macs"].items():
        name, size = key.split(":")
        macs[(name, *_common.parse_size(size))] = value
    sizes = sorted({(h, w) for h, w, _ in cells}, key=lambda s: s[0] * s[1])

    class Args:
        pass

    args = Args()
    args.sizes = sizes
    markdown = results_markdown(args, machine, cells, macs, payload["params"], payload.get("notes", []))
    if payload.get("profiles"):
        markdown += "\n" + profile_markdown(payload["profiles"], *payload.get("profile_size", sizes[0])) + "\n"
    print(markdown)
    if write_doc:
        _common.write_section(section, markdown)


# ----------------------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="512x1024", help="comma-separated HxW list (default 512x1024)")
    parser.add_argument("--batches", default="1,4", help="comma-separated batch sizes (default 1,4)")
    parser.add_argument("--models", default=",".join(ALL_MODELS), help="comma-separated subset of " + ",".join(ALL_MODELS))
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per (size, batch) (default 7)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up calls per model and cell (default 2)")
    parser.add_argument("--budget", type=float, default=900,
                        help="seconds of timed rounds per (size, batch) cell; stops early after >= 2 rounds")
    parser.add_argument("--skip", default="", help="comma-separated model:HxW:batch cells to leave out (memory/time)")
    parser.add_argument("--profile", action="store_true", help="per-op-type time breakdown at the first size, batch 1")
    parser.add_argument("--profile-models", default="resnet50,spgnet_r18x2_128,spgnet_r50x2_256")
    parser.add_argument("--quick", action="store_true", help="256x512, batch 1, 2 rounds, SPGNet 2xR18 + ResNet-50 + keras-cv R50")
    parser.add_argument("--section", default=None, help="docs/benchmarks.md section key (default from the sizes)")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--json", default=None, help="results JSON (default benchmarks/results/inference_<sizes>.json)")
    parser.add_argument("--render-only", action="store_true", help="re-render the section from the stored JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.batches, args.repeats, args.warmup = "256x512", "1", 2, 1
        args.models = "resnet50,spgnet_r18x2_128,kcv_deeplabv3plus_r50"
        args.profile_models = "resnet50,spgnet_r18x2_128"
    args.sizes = [_common.parse_size(s) for s in args.sizes.split(",") if s]
    args.batches = [int(b) for b in args.batches.split(",") if b]
    args.models = [m for m in args.models.split(",") if m]
    skip = {s for s in args.skip.split(",") if s}
    for name in args.models:
        if name not in ALL_MODELS:
            parser.error(f"unknown model {name!r}")
    size_key = "_".join(f"{h}x{w}" for h, w in args.sizes)
    section = args.section or ("inference-quick" if args.quick else f"inference-{size_key}")
    json_path = Path(args.json) if args.json else _common.RESULTS / f"{section}.json"
    if args.render_only:
        render_stored(json_path, section, not args.no_doc)
        return

    def log(message):
        print(message, flush=True)

    machine = _common.Machine()
    log(f"load average at start: {machine.load_start}")
    cells, macs, params, notes, profiles = {}, {}, {}, [], {}
    for height, width in args.sizes:
        runners, models = {}, {}
        for name in args.models:
            start = time.perf_counter()
            model = build_model(name, height, width)
            models[name] = model
            params[name] = count_params(model)
            macs[(name, height, width)] = count_macs(model, height, width)
            runners[name] = make_runner(model)
            log(f"built {name} at {height}x{width}: {params[name] / 1e6:.1f} M params, "
                f"{macs[(name, height, width)] / 1e9:.1f} GMACs ({time.perf_counter() - start:.0f} s)")
        for batch in args.batches:
            log(f"cell {height}x{width} batch {batch}")
            cells[(height, width, batch)] = benchmark_cell(
                runners, height, width, batch, args.repeats, args.budget, args.warmup, machine, skip, log)
            payload = dict(machine=machine.to_dict(), command=_common.command_line(),
                           cells={f"{h}x{w}:b{b}": {n: dict(median_s=v[0], times_s=v[1]) for n, v in r.items()}
                                  for (h, w, b), r in cells.items()},
                           macs={f"{n}:{h}x{w}": v for (n, h, w), v in macs.items()}, params=params)
            _common.write_json(json_path, payload)
        if args.profile and (height, width) == args.sizes[0]:
            for name in [m for m in args.profile_models.split(",") if m in models]:
                ops, counts, wall, group_times = op_type_profile(models[name], height, width)
                profiles[name] = dict(ops=ops, counts=counts, wall=wall, macs=macs[(name, height, width)],
                                      group_times={f"{g}|{k}": v for (g, k), v in group_times.items()},
                                      group_macs=macs_by_component(models[name], height, width))
                log(f"profiled {name}: wall {wall:.3f} s")
        del runners, models
        keras.backend.clear_session()
        gc.collect()
    for cell in skip:
        notes.append(f"Left out: `{cell}` (memory or time on this machine).")
    machine.finish()
    markdown = results_markdown(args, machine, cells, macs, params, notes)
    if profiles:
        markdown += "\n" + profile_markdown(profiles, *args.sizes[0]) + "\n"
        payload["profiles"] = profiles
        payload["profile_size"] = list(args.sizes[0])
    payload["machine"] = machine.to_dict()
    payload["notes"] = notes
    _common.write_json(json_path, payload)
    _common.publish(section, markdown, not args.no_doc, log)


if __name__ == "__main__":
    main()
