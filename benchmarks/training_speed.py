"""Training step time: deep supervision + OHEM vs plain cross-entropy, input pipeline vs training,
graph execution vs XLA.

Setup (the `camvid_cpu` experiment): SPGNet 2xResNet-18, decoder width D=64, CamVid
training crops 160x224, batch 8, SGD + poly decay and the mIoU metric from
`spgnet_keras.training.recipe_compile_arguments`. Loss variants (same architecture and initial weights):

- `plain`: softmax cross-entropy on the `prediction` output only (the model is
  re-wrapped with that single output, so the earlier stage's full-resolution logits are
  neither resized nor scored);
- `ds`: deep supervision (`prediction` + 0.4 x `stage1`), no OHEM;
- `ohem`: OHEM (threshold 0.7, `min_kept` per image scaled from the paper's
  100k per batch of 8 at 768x768) on `prediction` only;
- `ds_ohem`: deep supervision + OHEM (the paper's training loss).

Step time is measured with `model.fit` on one cached batch (no input pipeline in the
way): the variants run in interleaved rounds of `--steps` steps (short rounds, so that
load changes on the shared machine hit the variants alike), the first round is warm-up
(tracing / XLA compilation), and each step is timed from `on_train_batch_begin` to
`on_train_batch_end` (the loss is read back each step). Reported: the median step time
over all timed steps, and for the overhead the median over rounds of the per-round ratio
(variant median / plain median within the same round).

Input pipeline: the training `tf.data` pipeline (decode, random scale, flip, crop,
batch, prefetch) is iterated alone; images/s is compared with `fit` of `ds_ohem` on the
same pipeline (training images/s).

Examples::

    python benchmarks/training_speed.py                 # ~10-15 min on 2 cores
    python benchmarks/training_speed.py --quick         # ~3 min, 96x128 crops, batch 4, no XLA
    python benchmarks/training_speed.py --xla-variants ""   # graph execution only
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.setup_tensorflow_logging()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from spgnet_keras.config import DataConfig, LossConfig, OptimizerConfig, paper_ohem_loss  # noqa: E402
from spgnet_keras.models.presets import preset_arguments  # noqa: E402
from spgnet_keras.models.spgnet import PREDICTION, SPGNet  # noqa: E402
from spgnet_keras.training import make_datasets, recipe_compile_arguments  # noqa: E402

VARIANTS = ("plain", "ds", "ohem", "ds_ohem")
DESCRIPTIONS = {
    "plain": "cross-entropy on `prediction` only",
    "ds": "deep supervision (prediction + 0.4 x stage1)",
    "ohem": "OHEM on `prediction` only",
    "ds_ohem": "deep supervision + OHEM (paper)",
}


class StepTimer(keras.callbacks.Callback):
    """Time of each training step: `on_train_batch_begin` to `on_train_batch_end` brackets the
    `train_function` call (which also takes the batch from the iterator); reading the loss
    makes sure the step has finished."""

    def __init__(self):
        super().__init__()
        self.times = []
        self._start = None

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if logs and "loss" in logs:
            float(logs["loss"])
        self.times.append(time.perf_counter() - self._start)


def ohem_min_kept(crop):
    """The paper's 100k pixels per batch of 8 at 768x768 (12.5k per image), scaled to `crop`."""
    return paper_ohem_loss(crop).ohem_min_kept


def build_variant(variant, num_classes, arguments, crop, jit_compile, seed, max_steps):
    keras.utils.set_random_seed(seed)
    model = SPGNet(num_classes=num_classes, **arguments)
    deep = variant.startswith("ds")
    if not deep:
        model = keras.Model(model.input, {PREDICTION: model.output[PREDICTION]}, name=f"spgnet_{variant}")
    loss = LossConfig()
    if variant.endswith("ohem"):
        loss = paper_ohem_loss(crop)
    model.compile(**recipe_compile_arguments(model, OptimizerConfig(learning_rate=0.01), loss, max_steps),
                  jit_compile=jit_compile)
    return model


def pipeline_rate(dataset, batches, warmup, batch_size):
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        images, _ = next(iterator)
    _ = images.numpy()
    return batches * batch_size / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=None, help="CamVid folder (default: $SPGNET_DATA_DIR or ../shared/data)")
    parser.add_argument("--crop", default="160x224")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--decoder-channels", type=int, default=64)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="graph-execution variants")
    parser.add_argument("--xla-variants", default="plain,ds_ohem", help="variants also run with jit_compile=True")
    parser.add_argument("--steps", type=int, default=3, help="steps per variant per round (default 3)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds incl. the warm-up round (default 10)")
    parser.add_argument("--pipeline-batches", type=int, default=40, help="batches timed per pipeline measurement")
    parser.add_argument("--pipeline-steps", type=int, default=15, help="fit steps on the real pipeline per variant")
    parser.add_argument("--budget", type=float, default=1200,
                        help="seconds; no new timing round starts after this (at least 2 rounds run)")
    parser.add_argument("--quick", action="store_true", help="96x128 crops, batch 4, 2 variants, no XLA, 3 rounds of 3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--section", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.crop, args.batch_size, args.steps, args.rounds = "96x128", 4, 3, 3
        args.variants, args.pipeline_batches, args.pipeline_steps = "plain,ds_ohem", 15, 5
        if "--xla-variants" not in " ".join(sys.argv):
            args.xla_variants = ""
    crop = tuple(int(v) for v in args.crop.lower().split("x"))
    variants = [v for v in args.variants.split(",") if v]
    xla_variants = [v for v in args.xla_variants.split(",") if v]
    for v in variants + xla_variants:
        if v not in VARIANTS:
            parser.error(f"unknown variant {v!r}; expected {VARIANTS}")
    section = args.section or ("training-speed-quick" if args.quick else "training-speed")
    json_path = Path(args.json) if args.json else _common.RESULTS / f"{section}.json"

    def log(message):
        print(message, flush=True)

    machine = _common.Machine()
    root = _common.camvid_root(args.data_root)
    data_config = DataConfig(dataset="camvid", root=str(root), crop_size=list(crop), batch_size=args.batch_size)
    train, _, spec, num_classes = make_datasets(data_config, args.seed, args.batch_size)
    arguments = {**preset_arguments("spgnet_r18x2_128"), "decoder_channels": args.decoder_channels}

    # Input pipeline alone.
    pipeline_rates = [pipeline_rate(train, args.pipeline_batches, 5, args.batch_size)]
    log(f"pipeline alone: {pipeline_rates[-1]:.1f} images/s")

    # One cached batch for the step-time comparison.
    images, masks = next(iter(train))
    max_steps = 100000
    runs = [(v, False) for v in variants] + [(v, True) for v in xla_variants]
    models, timers, data = {}, {}, {}
    for variant, xla in runs:
        key = f"{variant}{' +XLA' if xla else ''}"
        start = time.perf_counter()
        models[key] = build_variant(variant, num_classes, arguments, crop, xla, args.seed, max_steps)
        names = list(models[key].output.keys())
        data[key] = tf.data.Dataset.from_tensors((images, {n: masks for n in names})).repeat()
        timers[key] = []
        log(f"built {key} ({time.perf_counter() - start:.0f} s), outputs {names}")

    first_round = {}
    per_round = {key: [] for key in models}
    start_all = time.perf_counter()
    for round_index in range(args.rounds):
        for key, model in models.items():
            timer = StepTimer()
            start = time.perf_counter()
            model.fit(data[key], epochs=1, steps_per_epoch=args.steps, verbose=0, callbacks=[timer])
            if round_index == 0:
                first_round[key] = time.perf_counter() - start
            else:
                timers[key] += timer.times
                per_round[key].append(_common.median(timer.times))
            log(f"round {round_index} {key}: {', '.join(f'{t:.2f}' for t in timer.times)}")
        machine.sample_load()
        if round_index >= 2 and time.perf_counter() - start_all > args.budget:
            log("budget reached")
            break
    rounds_done = round_index + 1

    # Training on the real pipeline (ds_ohem, with and without XLA) and the pipeline again.
    pipeline_fit = {}
    for key in [k for k in models if k.startswith("ds_ohem")] or list(models)[-1:]:
        model = models[key]
        names = list(model.output.keys())
        real = train.map(lambda image, mask: (image, {name: mask for name in names}))
        timer = StepTimer()
        model.fit(real, epochs=1, steps_per_epoch=args.pipeline_steps, verbose=0, callbacks=[timer])
        pipeline_fit[key] = timer.times[1:]
        log(f"fit on pipeline {key}: median {_common.median(pipeline_fit[key]):.2f} s/step")
    pipeline_rates.append(pipeline_rate(train, args.pipeline_batches, 5, args.batch_size))
    log(f"pipeline alone (again): {pipeline_rates[-1]:.1f} images/s")
    machine.finish()

    medians = {k: _common.median(v) for k, v in timers.items()}

    def paired(key, base_key):
        """Median over rounds of (key's round median / base_key's round median)."""
        pairs = zip(per_round[key], per_round[base_key])
        return _common.median([a / b for a, b in pairs])

    payload = dict(machine=machine.to_dict(), command=_common.command_line(), crop=crop, batch=args.batch_size,
                   decoder_channels=args.decoder_channels, step_times=timers, medians=medians,
                   first_round_s=first_round, pipeline_images_per_s=pipeline_rates,
                   fit_on_pipeline_step_times=pipeline_fit, ohem_min_kept=ohem_min_kept(crop), per_round=per_round)
    _common.write_json(json_path, payload)

    b = args.batch_size
    lines = [f"## Training speed (2xR18 SPGNet, D={args.decoder_channels}, CamVid crops {crop[0]}x{crop[1]}, "
             f"batch {b})", "", machine.markdown(), "",
             f"`model.fit` on one cached batch; {rounds_done - 1} timed rounds x {args.steps} steps per variant "
             f"(interleaved), round 0 = warm-up (tracing, XLA compilation). 'vs plain' = median over rounds of the "
             f"within-round ratio of median step times. "
             f"OHEM: threshold 0.7, min_kept {ohem_min_kept(crop)} pixels per image. Float32.", "",
             "| Variant | Execution | Step time median (s) | min-max (s) | n | Images/s | vs plain (same execution) | "
             "Warm-up round (s) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for key in models:
        variant, xla = key.split(" ")[0], key.endswith("+XLA")
        base_key = "plain +XLA" if xla else "plain"
        rel = f"{100 * (paired(key, base_key) - 1):+.1f} %" if base_key in medians else "-"
        times = timers[key]
        lines.append(f"| {DESCRIPTIONS[variant]} | {'XLA (jit_compile=True)' if xla else 'graph (jit_compile=False)'} | "
                     f"{medians[key]:.3f} | {min(times):.3f}-{max(times):.3f} | {len(times)} | {b / medians[key]:.1f} | "
                     f"{rel} | {first_round[key]:.0f} |")
    lines.append("")
    if "ds_ohem" in medians and "plain" in medians:
        overhead = paired("ds_ohem", "plain") - 1
        lines.append(f"- Deep supervision + OHEM overhead over plain cross-entropy (graph): **{100 * overhead:+.1f} %** "
                     f"({'meets' if overhead <= 0.10 else 'misses'} the <= 10 % goal); ratio of the overall medians: "
                     f"{100 * (medians['ds_ohem'] / medians['plain'] - 1):+.1f} %")
    if "ds_ohem +XLA" in medians and "plain +XLA" in medians:
        overhead = paired("ds_ohem +XLA", "plain +XLA") - 1
        lines.append(f"- Same with XLA: **{100 * overhead:+.1f} %**; ratio of the overall medians: "
                     f"{100 * (medians['ds_ohem +XLA'] / medians['plain +XLA'] - 1):+.1f} %")
    for v in VARIANTS:
        if v in medians and f"{v} +XLA" in medians:
            lines.append(f"- XLA / graph step time for {v}: {paired(f'{v} +XLA', v):.2f} (median of within-round "
                         f"ratios; {'XLA slower' if paired(f'{v} +XLA', v) > 1 else 'XLA faster'} on this CPU)")
    lines += ["", "| Input pipeline vs training | Images/s |", "|---|---:|"]
    lines.append(f"| `tf.data` training pipeline alone (start, end of run) | "
                 f"{pipeline_rates[0]:.1f}, {pipeline_rates[1]:.1f} |")
    for key, times in pipeline_fit.items():
        med = _common.median(times)
        lines.append(f"| `fit` {key} on the pipeline (median of {len(times)} steps) | {b / med:.1f} |")
    pipe = min(pipeline_rates)
    for key, times in pipeline_fit.items():
        rate = b / _common.median(times)
        lines.append("")
        lines.append(f"- Pipeline / training images/s ({key}): **{pipe / rate:.1f}x** (lower of the two pipeline "
                     f"measurements; {'meets' if pipe / rate >= 3 else 'misses'} the >= 3x goal)")
    lines.append("")
    markdown = "\n".join(lines)
    _common.publish(section, markdown, not args.no_doc, log)


if __name__ == "__main__":
    main()
