"""Guided-attention statistics of trained SPGNets on CamVid val: is the SPG gate doing anything?

The SPG module between stage 1 and stage 2 (Sec 3.4, `spgnet_keras.layers.spg`) computes,
from the stage-1 decoder output x_d (stride 4, `H x W x D`):

    x_l = logits_conv(x_d)                     # supervised stage-1 logits
    m   = sigmoid(attention_conv(x_l))         # guided attention (the gate), H x W x D
    out = relu(bn(output_conv(x_d + m * transform_conv(x_d))))   # next stage's input

For each model (`--models`: files or globs) this script runs every CamVid val image (padded
bottom/right to a multiple of 32, as `visualization.guided_attention_maps` does) up to
x_d with a `keras.Model(model.input, spg.input)` and reports, over the feature-map cells
that cover the image (padding excluded):

1. Gate statistics: mean, std, fraction of values < 0.1 and > 0.9; the mean *spatial* std
   (std over the positions of one channel of one image, averaged over channels and images:
   ~0 means the gate is a per-channel constant, i.e. not spatially selective); the mean
   *channel* std (std over the D channels of one pixel); how many channels are near-constant
   (mean spatial std < 0.05) and how many are on average off (< 0.1) or on (> 0.9).
2. What the gate does to the features: `||m * T(x_d)|| / ||x_d||` (T = transform conv,
   Frobenius norms per image, averaged over images) against `||T(x_d)|| / ||x_d||` (the
   branch with the gate fixed to 1, i.e. what the 'sum' variant's transform path adds) and
   `||m * T|| / ||T||`; and the relative change of the next stage's input when the gate is
   replaced by its per-image channel means (`m_bar`, spatial selectivity removed) or by 0
   (branch removed): `||O(x_d + m T) - O(x_d + m' T)|| / ||O(x_d + m T)||`, O = the output
   conv + BN + ReLU.
3. Class selectivity (paper Sec 4.5 / Fig 4): for every class c with at least
   `--min-pixels` labelled pixels, the top-15 attention channels of c
   (`top_attention_channels(attention_matrix(spg), c, 15)`), `m` upsampled bilinearly to
   the image (as the paper's maps) and averaged over those channels; the mean over c's
   pixels divided by the mean over the pixels of all other (labelled) classes. A ratio > 1:
   the channels the attention conv assigns to c open more on c; ~1: not class-selective.
   The same ratio for c's 15 lowest-weight channels is given as a reference (< 1 if
   selective).
4. Stage-1 and final mIoU (`evaluate(..., output="stage1")` and the default output), and,
   with `--knockouts`, the final mIoU with the gate replaced at test time by its
   per-channel val mean (`mean`: a constant gate with the same average gain) or by 0
   (`zero`: the excite branch removed); each knockout is one more pass over val.

Prints a markdown section per model and writes a JSON (`--results`).

Example::

    python benchmarks/attention_stats.py --models 'runs/ablation_medium/spg_sigmoid_seed*.keras' \\
        --knockouts mean,zero
"""

from __future__ import annotations

import argparse
import glob
import math
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.setup_tensorflow_logging()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from spgnet_keras.constants import OUTPUT_STRIDE  # noqa: E402
from spgnet_keras.data import dataset_spec, load_image  # noqa: E402
from spgnet_keras.evaluation import dataset_pairs, evaluate, load_label  # noqa: E402
from spgnet_keras.layers.spg import SemanticPredictionGuidance  # noqa: E402
from spgnet_keras.preprocessing import pad_bottom_right  # noqa: E402
from spgnet_keras.visualization import TOP_K, attention_matrix, top_attention_channels  # noqa: E402

KNOCKOUTS = ("mean", "zero")
FEATURE_STRIDE = 4  # x_d is the stride-4 decoder output


def expand_models(patterns):
    paths = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern))
        if not matches and Path(pattern).is_file():
            matches = [pattern]
        if not matches:
            print(f"warning: no model matches {pattern!r}", file=sys.stderr)
        paths += [m for m in matches if m not in paths]
    return paths


def spg_layers(model):
    """{stage: SemanticPredictionGuidance} of a model (empty for a one-stage or non-SPG model)."""
    layers = {}
    if not hasattr(model, "guidance_layer") or getattr(model, "guidance", None) != "spg":
        return layers
    for stage in range(1, len(model.stage_backbones)):
        layer = model.guidance_layer(stage)
        if isinstance(layer, SemanticPredictionGuidance):
            layers[stage] = layer
    return layers


class GateAccumulator:
    """Running sums for the statistics of one SPG layer over the val images."""

    def __init__(self, layer, num_classes, top_k):
        self.layer = layer
        self.num_classes = num_classes
        self.weights = attention_matrix(layer)  # C x D
        self.depth = self.weights.shape[1]
        self.top = [top_attention_channels(self.weights, c, top_k) for c in range(num_classes)]
        self.bottom = [np.argsort(self.weights[c], kind="stable")[:top_k] for c in range(num_classes)]
        self.count = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.low = 0
        self.high = 0
        self.spatial_std = []  # per image: mean over channels of the std over positions
        self.channel_std = []  # per image: mean over positions of the std over channels
        self.channel_sum = np.zeros(self.depth)  # per-channel sums of m (for the per-channel mean)
        self.channel_spatial_std = np.zeros(self.depth)  # per-channel sums of per-image spatial std
        self.ratios = {key: [] for key in ("gated_over_x", "transform_over_x", "gated_over_transform",
                                           "next_change_mean_gate", "next_change_zero_gate")}
        self.class_sums = np.zeros((num_classes, self.depth))  # sum of upsampled m over pixels of class c
        self.class_pixels = np.zeros(num_classes, np.int64)
        self.images = 0

    def next_input(self, merged):
        layer = self.layer
        return tf.nn.relu(layer.output_bn(layer.output_conv(merged), training=False))

    def add(self, features, image_shape, padded_shape, label):
        layer = self.layer
        logits = layer.logits_conv(features)
        gate = layer.guided_attention(features, logits)
        transformed = layer.transform_conv(features)
        if layer.excitation == "sum":
            excited, mean_excited, zero_excited = gate + transformed, None, transformed
        else:
            mean_gate = tf.reduce_mean(gate, axis=(1, 2), keepdims=True)
            excited, mean_excited, zero_excited = gate * transformed, mean_gate * transformed, None
        base = features if layer.identity else tf.zeros_like(features)
        next_full = self.next_input(base + excited)
        next_mean = None if mean_excited is None else self.next_input(base + mean_excited)
        next_zero = self.next_input(base + (zero_excited if zero_excited is not None else 0.0 * excited))

        height, width = image_shape
        h = -(-height // FEATURE_STRIDE)
        w = -(-width // FEATURE_STRIDE)

        def valid(tensor):
            return np.asarray(tf.cast(tensor, tf.float32))[0, :h, :w].astype(np.float64)

        m, x, t, y = valid(gate), valid(features), valid(transformed), valid(excited)
        out_full, out_zero = valid(next_full), valid(next_zero)

        self.count += m.size
        self.total += m.sum()
        self.total_sq += np.square(m).sum()
        self.low += int((m < 0.1).sum())
        self.high += int((m > 0.9).sum())
        spatial = m.reshape(-1, self.depth).std(axis=0)
        self.spatial_std.append(spatial.mean())
        self.channel_std.append(m.std(axis=-1).mean())
        self.channel_sum += m.reshape(-1, self.depth).sum(axis=0)
        self.channel_spatial_std += spatial

        norm_x = np.linalg.norm(x)
        norm_t = np.linalg.norm(t)
        norm_y = np.linalg.norm(y)
        norm_out = np.linalg.norm(out_full)
        self.ratios["gated_over_x"].append(norm_y / norm_x)
        self.ratios["transform_over_x"].append(norm_t / norm_x)
        self.ratios["gated_over_transform"].append(norm_y / norm_t)
        if next_mean is not None:
            self.ratios["next_change_mean_gate"].append(np.linalg.norm(out_full - valid(next_mean)) / norm_out)
        self.ratios["next_change_zero_gate"].append(np.linalg.norm(out_full - out_zero) / norm_out)

        # class selectivity at the image resolution, m upsampled as in guided_attention_maps
        upsampled = tf.image.resize(tf.cast(gate, tf.float32), padded_shape, method="bilinear")
        upsampled = tf.reshape(upsampled[0, :height, :width], (-1, self.depth))
        flat_label = np.asarray(label, np.int64).reshape(-1)
        segments = np.where(flat_label < self.num_classes, flat_label, self.num_classes)  # ignore -> extra bucket
        sums = tf.math.unsorted_segment_sum(upsampled, segments, self.num_classes + 1)
        self.class_sums += np.asarray(sums, np.float64)[: self.num_classes]
        self.class_pixels += np.bincount(segments, minlength=self.num_classes + 1)[: self.num_classes]
        self.images += 1

    def summary(self, class_names, min_pixels):
        mean = self.total / self.count
        std = math.sqrt(max(self.total_sq / self.count - mean * mean, 0.0))
        channel_mean = self.channel_sum / (self.count / self.depth)
        channel_spatial = self.channel_spatial_std / self.images
        gate = dict(mean=mean, std=std, frac_below_0_1=self.low / self.count, frac_above_0_9=self.high / self.count,
                    spatial_std=float(np.mean(self.spatial_std)), channel_std=float(np.mean(self.channel_std)),
                    channels=self.depth, channels_near_constant=int((channel_spatial < 0.05).sum()),
                    channels_mean_below_0_1=int((channel_mean < 0.1).sum()),
                    channels_mean_above_0_9=int((channel_mean > 0.9).sum()),
                    channel_means=channel_mean, channel_spatial_std=channel_spatial)
        norms = {key: (float(np.mean(values)) if values else None) for key, values in self.ratios.items()}
        total_pixels = self.class_pixels.sum()
        classes = []
        for c in range(self.num_classes):
            pixels = int(self.class_pixels[c])
            if pixels < min_pixels or total_pixels - pixels <= 0:
                continue

            def ratio(channels):
                inside = self.class_sums[c, channels].sum() / (pixels * len(channels))
                outside = (self.class_sums[:, channels].sum() - self.class_sums[c, channels].sum()) / (
                    (total_pixels - pixels) * len(channels))
                return inside, outside

            top_in, top_out = ratio(self.top[c])
            bottom_in, bottom_out = ratio(self.bottom[c])
            classes.append(dict(class_index=c, name=class_names[c], pixels=pixels, top_in=top_in, top_out=top_out,
                                top_ratio=top_in / top_out if top_out > 0 else float("nan"),
                                bottom_ratio=bottom_in / bottom_out if bottom_out > 0 else float("nan"),
                                top_channels=self.top[c]))
        return dict(gate=gate, norms=norms, classes=classes,
                    mean_top_ratio=float(np.mean([r["top_ratio"] for r in classes])) if classes else None,
                    mean_bottom_ratio=float(np.mean([r["bottom_ratio"] for r in classes])) if classes else None)


def collect(model, layers, pairs, num_classes, class_names, top_k, min_pixels):
    stages = sorted(layers)
    feature_model = keras.Model(model.input, [layers[s].input for s in stages])
    features_fn = tf.function(lambda x: feature_model(x, training=False), reduce_retracing=True)
    accumulators = {s: GateAccumulator(layers[s], num_classes, top_k) for s in stages}
    for image_path, label_path in pairs:
        image = load_image(image_path)
        label = load_label(label_path)
        height, width = image.shape[:2]
        padded = (-(-height // OUTPUT_STRIDE) * OUTPUT_STRIDE, -(-width // OUTPUT_STRIDE) * OUTPUT_STRIDE)
        batch = pad_bottom_right(tf.convert_to_tensor(image[None], tf.float32), *padded)
        features = features_fn(batch)
        if not isinstance(features, (list, tuple)):
            features = [features]
        for stage, x_d in zip(stages, features):
            accumulators[stage].add(x_d, (height, width), padded, label)
    return {s: acc.summary(class_names, min_pixels) for s, acc in accumulators.items()}


def knockout_miou(model, layer, mode, channel_means, pairs, spec):
    """Final mIoU with `layer`'s gate replaced by a constant (its val channel means, or 0)."""
    depth = len(channel_means)
    constant = np.asarray(channel_means if mode == "mean" else np.zeros(depth), np.float32)

    def constant_gate(self, features, logits=None):
        shape = tf.shape(features)
        value = tf.cast(tf.reshape(constant, (1, 1, 1, depth)), self.compute_dtype)
        return tf.broadcast_to(value, tf.concat([shape[:3], [depth]], 0))

    object.__setattr__(layer, "guided_attention", types.MethodType(constant_gate, layer))
    try:
        return evaluate(_common.CompiledModel(model), pairs, num_classes=spec.num_classes,
                        class_names=spec.class_names)
    finally:
        object.__delattr__(layer, "guided_attention")


def fmt(value, digits=3):
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def markdown(record):
    lines = [f"### `{record['model']}`", "",
             f"{record['images']} CamVid val images; SPG excitation `{record['excitation']}`, "
             f"identity {record['identity']}, D = {record['stages'][0]['gate']['channels'] if record['stages'] else '-'}.",
             ""]
    miou = record.get("miou") or {}
    if miou:
        lines += ["| output | mIoU (%) | pixel acc. (%) |", "|---|---:|---:|"]
        for key, label in (("stage1", "stage 1 (x_l, guides the gate)"), ("final", "final (stage 2)")):
            if key in miou:
                lines.append(f"| {label} | {100 * miou[key]['miou']:.2f} | {100 * miou[key]['pixel_accuracy']:.2f} |")
        for mode, result in (record.get("knockouts") or {}).items():
            text = {"mean": "final, gate := per-channel val mean", "zero": "final, gate := 0 (no excite branch)"}[mode]
            lines.append(f"| {text} | {100 * result['miou']:.2f} | {100 * result['pixel_accuracy']:.2f} |")
        lines.append("")
    for stage in record["stages"]:
        g, n = stage["gate"], stage["norms"]
        lines += [f"SPG after stage {stage['stage']}: gate m", "",
                  "| mean | std | frac < 0.1 | frac > 0.9 | spatial std | channel std | near-constant ch. "
                  "| ch. mean < 0.1 | ch. mean > 0.9 |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {fmt(g['mean'])} | {fmt(g['std'])} | {fmt(g['frac_below_0_1'])} | {fmt(g['frac_above_0_9'])} | "
                  f"{fmt(g['spatial_std'])} | {fmt(g['channel_std'])} | {g['channels_near_constant']}/{g['channels']} | "
                  f"{g['channels_mean_below_0_1']}/{g['channels']} | {g['channels_mean_above_0_9']}/{g['channels']} |",
                  "",
                  "| \\|\\|m T(x_d)\\|\\| / \\|\\|x_d\\|\\| | \\|\\|T(x_d)\\|\\| / \\|\\|x_d\\|\\| | "
                  "\\|\\|m T\\|\\| / \\|\\|T\\|\\| | next input change, m := m_bar | next input change, m := 0 |",
                  "|---:|---:|---:|---:|---:|",
                  f"| {fmt(n['gated_over_x'])} | {fmt(n['transform_over_x'])} | {fmt(n['gated_over_transform'])} | "
                  f"{fmt(n['next_change_mean_gate'])} | {fmt(n['next_change_zero_gate'])} |",
                  "",
                  f"Class selectivity (top-{record['top_k']} channels of each class; ratio = mean on the class's "
                  "pixels / mean on other classes' pixels):", "",
                  "| class | pixels | top-k mean on class | top-k mean elsewhere | top-k ratio | bottom-k ratio |",
                  "|---|---:|---:|---:|---:|---:|"]
        for row in stage["classes"]:
            lines.append(f"| {row['name']} | {row['pixels']} | {fmt(row['top_in'])} | {fmt(row['top_out'])} | "
                         f"{fmt(row['top_ratio'])} | {fmt(row['bottom_ratio'])} |")
        lines.append(f"| **mean over classes** | | | | {fmt(stage['mean_top_ratio'])} | "
                     f"{fmt(stage['mean_bottom_ratio'])} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True, help="SPGNet .keras files or globs (quote globs)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--max-images", type=int, default=None, help="first N val images (default all 101)")
    parser.add_argument("--top-k", type=int, default=TOP_K, help=f"channels per class (default {TOP_K}, the paper's)")
    parser.add_argument("--min-pixels", type=int, default=10000,
                        help="classes with fewer labelled val pixels are left out of the selectivity table")
    parser.add_argument("--no-miou", action="store_true", help="skip the stage-1/final mIoU passes")
    parser.add_argument("--knockouts", default="", help=f"comma-separated, of {list(KNOCKOUTS)} (one val pass each)")
    parser.add_argument("--results", default=None, help="JSON (default benchmarks/results/attention_stats.json)")
    args = parser.parse_args(argv)
    knockouts = _common.comma_choices(parser, args.knockouts, KNOCKOUTS, "knockout")
    paths = expand_models(args.models)
    if not paths:
        parser.error("no models found")

    machine = _common.Machine()
    root = _common.camvid_root(args.data_root)
    spec = dataset_spec("camvid", root)
    pairs = dataset_pairs("camvid", root, "val")[: args.max_images]
    records, sections = [], []
    for path in paths:
        keras.backend.clear_session()
        model = keras.saving.load_model(path, safe_mode=True)
        layers = spg_layers(model)
        if not layers:
            print(f"{path}: no SemanticPredictionGuidance layer (guidance "
                  f"{getattr(model, 'guidance', 'n/a')!r}); skipped", flush=True)
            continue
        first = layers[min(layers)]
        record = dict(model=path, excitation=first.excitation, identity=first.identity, top_k=args.top_k,
                      images=len(pairs), min_pixels=args.min_pixels, stages=[], miou={}, knockouts={})
        start = time.perf_counter()
        summaries = collect(model, layers, pairs, spec.num_classes, spec.class_names, args.top_k, args.min_pixels)
        record["stats_seconds"] = time.perf_counter() - start
        record["stages"] = [dict(stage=s, **summary) for s, summary in summaries.items()]
        print(f"{path}: attention statistics in {record['stats_seconds']:.0f} s", flush=True)
        if not args.no_miou:
            outputs = [("final", None)] + [(f"stage{s}", f"stage{s}") for s in sorted(layers)
                                           if f"stage{s}" in model.output]
            for key, output in outputs:
                start = time.perf_counter()
                kwargs = {"output": output} if output else {}
                result = evaluate(_common.CompiledModel(model), pairs, num_classes=spec.num_classes,
                                  class_names=spec.class_names, **kwargs)
                record["miou"][key] = dict(miou=result.miou, pixel_accuracy=result.pixel_accuracy,
                                           iou=[None if math.isnan(v) else v for v in result.iou],
                                           seconds=time.perf_counter() - start)
                print(f"{path}: {key} mIoU {100 * result.miou:.2f} %", flush=True)
        for mode in knockouts:
            if first.excitation == "sum":
                print(f"{path}: knockout {mode} skipped (no gate in the 'sum' variant)", flush=True)
                continue
            start = time.perf_counter()
            stage_summary = summaries[min(layers)]
            result = knockout_miou(model, first, mode, stage_summary["gate"]["channel_means"], pairs, spec)
            record["knockouts"][mode] = dict(miou=result.miou, pixel_accuracy=result.pixel_accuracy,
                                             iou=[None if math.isnan(v) else v for v in result.iou],
                                             seconds=time.perf_counter() - start)
            print(f"{path}: knockout {mode}: final mIoU {100 * result.miou:.2f} %", flush=True)
        machine.sample_load()
        records.append(record)
        sections.append(markdown(record))
        del model

    machine.finish()
    print()
    print("\n".join(sections))
    print(machine.markdown())
    results = Path(args.results) if args.results else _common.RESULTS / "attention_stats.json"
    _common.write_json(results, dict(command=_common.command_line(), machine=machine.to_dict(), models=records))
    print(f"results: {results}")


if __name__ == "__main__":
    main()
