"""Table 3 / Table 4 ablation of SPGNet on CamVid: every variant under one budget and the same seeds.

Variants (`spgnet_keras.models.ablation_arguments`; ResNet-18 encoders, decoder width from
the budget): `one_stage`, `no_spg` (2 stages, decoder features passed on), `spg_sum`,
`spg_softmax`, `spg_sigmoid` (the paper's SPG), `spg_sigmoid_no_identity`,
`spg_sigmoid_no_supervision`, `se`, `ge`; and, not a paper row, `deeplabv3plus`
(keras-cv DeepLabV3+ on a ResNet-18, the comparison users ask for). Every (variant, seed) run uses the same
seed for the weights and the same training batches (the pipeline is seeded), the same
optimiser (the recipe's `OptimizerConfig`: SGD, poly decay, coupled weight decay), the
recipe's deep-supervision weight (`LossConfig`, 1.0) on every stage-1 output, and is scored
with `spgnet_keras.evaluation.evaluate` (full val images, single scale) on the
`prediction` output. Encoders start from random weights (no ImageNet weights offline),
unlike the paper.

Training is not bitwise reproducible on the CPU (`benchmarks/reproducibility.py`): a rerun of
a (variant, seed) pair sees the same batches and initial weights but can end several mIoU points
away, so runs of two variants on one seed are not paired measurements; compare means over runs.

Stage-1 loss (recorded per run as `outputs`): every two-stage row has one except
`spg_sigmoid_no_supervision` (Table 3, "Sup." x: its x_l is not supervised, so the model
has no stage-1 output) and, having one stage, `one_stage`. In `no_spg`, `se` and `ge`
a 1x1 classifier on the stage-1 decoder output is supervised as in the SPG rows but feeds
nothing: the rows differ only in what passes to stage 2, and "Supervise x" in Table 4 means
the attention is not computed from supervised predictions.

Budgets (`--budget`):

- `smoke`: crops 96x128, batch 4, D=32, 20 steps, first 12 val images, 1 seed: checks
  that every variant trains and evaluates; ~7-8 min on 2 otherwise idle cores (most of it is
  tracing the nine training graphs, ~30 s each), longer when other jobs share the CPU. Its
  mIoU values are noise.
- `small`: crops 160x224, batch 8, D=64, 100 steps (~2 passes over train), all 101 val
  images; ~3 min per (variant, seed) on 2 cores.
- `medium`: as `small` with 400 steps (~9 passes); ~4-11 min per run on 2 cores.
- `full`: crops 160x224, batch 8, D=128 (the paper's Table 3 width), 920 steps (20
  passes), all val images, meant for 3+ seeds on a bigger machine.

Results are appended to `benchmarks/results/ablation_<budget>.json` after each run;
(variant, seed) pairs already there are skipped, so a budget can be run in pieces
(`--variants`) and resumed. The table (docs/benchmarks.md) is written from all stored
runs of the budget.

Sensitivity (`--learning-rate`, `--stage-weight`): the budget with one setting changed; the runs
go to `ablation_<budget>_lr<value>.json` / `ablation_<budget>_sw<value>.json` so that they
pair by seed with the default runs (`benchmarks/sensitivity.py` tabulates the pairs).
`--curve-steps 100,200,300` also scores final and stage-1 mIoU at those steps during training
(the poly schedule still runs to the budget's last step, so a step-100 point is a model in the
middle of a 400-step schedule, not a 100-step run) and, with `--save-models`, saves each such
model as `<variant>_seed<k>_step<n>.keras` (for `attention_stats.py`).

Examples::

    python benchmarks/ablation.py --budget smoke
    python benchmarks/ablation.py --budget small --seeds 1 --variants one_stage,no_spg,spg_sum,spg_softmax
    python benchmarks/ablation.py --budget small --seeds 2      # adds seed 1 to what is stored
    python benchmarks/ablation.py --budget medium --variants no_spg,spg_sigmoid --learning-rate 0.04
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from ablation_settings import BUDGETS, PAPER, STAGE1, VARIANTS  # noqa: E402

_common.setup_tensorflow_logging()

import keras  # noqa: E402

from spgnet_keras.config import DataConfig, LossConfig, OptimizerConfig  # noqa: E402
from spgnet_keras.constants import PREDICTION  # noqa: E402
from spgnet_keras.data import dataset_spec  # noqa: E402
from spgnet_keras.evaluation import dataset_pairs, evaluate  # noqa: E402
from spgnet_keras.models import ablation_arguments  # noqa: E402
from spgnet_keras.models.spgnet import SPGNet  # noqa: E402
from spgnet_keras.profiler import count_params  # noqa: E402
from spgnet_keras.training import make_datasets, recipe_compile_arguments  # noqa: E402


def deeplabv3plus_r18(num_classes):
    """keras-cv DeepLabV3+ on a ResNet-18 (v1, basic blocks), RGB 0-255 in (the backbone rescales
    by 1/255), logits out under SPGNet's output name so the recipe's loss and `evaluate` apply."""
    import keras_cv

    backbone = keras_cv.models.ResNetBackbone(
        stackwise_filters=[64, 128, 256, 512], stackwise_blocks=[2, 2, 2, 2], stackwise_strides=[1, 2, 2, 2],
        block_type="basic_block", input_shape=(None, None, 3), include_rescaling=True)
    segmenter = keras_cv.models.DeepLabV3Plus(backbone=backbone, num_classes=num_classes, projection_filters=48)
    images = keras.Input((None, None, 3), name="images")
    return keras.Model(images, {PREDICTION: segmenter(images)}, name="deeplabv3plus_r18")


def build_variant(variant, num_classes, decoder):
    if variant == "deeplabv3plus":
        return deeplabv3plus_r18(num_classes)
    return SPGNet(num_classes=num_classes, **{**ablation_arguments(variant), "decoder_channels": decoder})


def scores(model, pairs, spec):
    """(final mIoU result, stage-1 mIoU or None) on `pairs`, the model in inference mode."""
    compiled = _common.CompiledModel(model)
    result = evaluate(compiled, pairs, num_classes=spec.num_classes, class_names=spec.class_names)
    stage1 = None
    if STAGE1 in model.output:  # how good the predictions that guide stage 2 are (Sec 3.2)
        stage1 = evaluate(compiled, pairs, num_classes=spec.num_classes, output=STAGE1).miou
    return result, stage1


class CurvePoints(keras.callbacks.Callback):
    """Scores (and saves) the model at given training steps: mIoU over training."""

    def __init__(self, steps, pairs, spec, log, save_stem=None):
        super().__init__()
        self.steps, self.pairs, self.spec, self.log, self.save_stem = set(steps), pairs, spec, log, save_stem
        self.points = []

    def on_train_batch_end(self, batch, logs=None):
        step = batch + 1
        if step not in self.steps:
            return
        result, stage1 = scores(self.model, self.pairs, self.spec)
        self.points.append(dict(step=step, miou=result.miou, stage1_miou=stage1, loss=float(logs["loss"])))
        self.log(f"  step {step}: mIoU {100 * result.miou:.2f} %"
                 + (f", stage 1 {100 * stage1:.2f} %" if stage1 is not None else ""))
        if self.save_stem is not None:
            self.save_stem.parent.mkdir(parents=True, exist_ok=True)
            self.model.save(f"{self.save_stem}_step{step}.keras")


def run_one(variant, seed, budget, root, spec, pairs, log, save_dir=None, overrides=None, curve_steps=()):
    settings = dict(BUDGETS[budget], **(overrides or {}))
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    data_config = DataConfig(dataset="camvid", root=str(root), crop_size=list(settings["crop"]),
                             batch_size=settings["batch"], scales=settings["scales"])
    train, _, _, num_classes = make_datasets(data_config, seed, settings["batch"])
    if variant == "deeplabv3plus":  # a plain functional model: one target per output name
        train = train.map(lambda image, mask: (image, {PREDICTION: mask}))
    start = time.perf_counter()
    model = build_variant(variant, num_classes, settings["decoder"])
    loss_config = LossConfig(**({"stage_weight": settings["stage_weight"]} if "stage_weight" in settings else {}))
    model.compile(**recipe_compile_arguments(model, OptimizerConfig(learning_rate=settings["learning_rate"]),
                                             loss_config, settings["steps"]))
    curve = CurvePoints([s for s in curve_steps if s < settings["steps"]], pairs, spec, log,
                        save_dir / f"{variant}_seed{seed}" if save_dir is not None else None)
    history = model.fit(train, epochs=1, steps_per_epoch=settings["steps"], verbose=0, callbacks=[curve])
    train_seconds = time.perf_counter() - start  # includes the curve points' evaluations
    start = time.perf_counter()
    result, stage1 = scores(model, pairs, spec)
    eval_seconds = time.perf_counter() - start
    loss = float(history.history["loss"][-1])
    curve.points.append(dict(step=settings["steps"], miou=result.miou, stage1_miou=stage1, loss=loss))
    record = dict(variant=variant, seed=seed, budget=budget, settings={k: list(v) if isinstance(v, tuple) else v
                                                                        for k, v in settings.items()},
                  params=count_params(model), outputs=sorted(model.output), miou=result.miou, pixel_accuracy=result.pixel_accuracy,
                  stage1_miou=stage1,
                  iou=[None if math.isnan(v) else v for v in result.iou], final_train_loss=loss,
                  train_seconds=train_seconds, eval_seconds=eval_seconds, val_images=result.num_images,
                  load=_common.load_average()[0], stage_weight=loss_config.stage_weight)
    if len(curve.points) > 1:
        record["curve"] = curve.points
    log(f"{variant} seed {seed}: mIoU {100 * result.miou:.2f} %, loss {loss:.3f}, train {train_seconds:.0f} s, "
        f"eval {eval_seconds:.0f} s")
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
        model.save(save_dir / f"{variant}_seed{seed}.keras")
    del model
    return record


def load_results(path):
    if path.exists():
        return json.loads(path.read_text())
    return dict(runs=[], machines=[])


def table_markdown(budget, runs, seeds_requested, overrides=None):
    settings = dict(BUDGETS[budget], **(overrides or {}))
    by_variant = {v: [r for r in runs if r["variant"] == v] for v in VARIANTS}
    lines = [
        "| Table | Variant | Paper (Cityscapes val, ImageNet R18) | Paper vs baseline | Ours: CamVid val mIoU | "
        "seeds | min-max | Ours vs baseline | Stage-1 mIoU | Params | Train s / run |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = by_variant["no_spg"]
    base_mean = statistics.mean(r["miou"] for r in base) if base else float("nan")
    for variant in VARIANTS:
        table, label, paper = PAPER[variant]
        values = [100 * r["miou"] for r in by_variant[variant]]
        if values:
            mean = statistics.mean(values)
            text = f"{mean:.2f}" + (f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else "")
            low, high = _common.spread(values)
            minmax = f"{low:.2f}-{high:.2f}" if len(values) > 1 else "-"
            delta = f"{mean - 100 * base_mean:+.2f}" if base else "-"
            params = f"{by_variant[variant][0]['params'] / 1e6:.1f} M"
            seconds = f"{statistics.mean(r['train_seconds'] for r in by_variant[variant]):.0f}"
            stage1_values = [100 * r["stage1_miou"] for r in by_variant[variant] if r.get("stage1_miou") is not None]
            stage1 = f"{statistics.mean(stage1_values):.2f}" if stage1_values else "-"
        else:
            text, minmax, delta, stage1, params, seconds = "not run", "-", "-", "-", "-", "-"
        paper_text = "-" if paper is None else f"{paper:.2f}"
        paper_delta = "-" if paper is None else f"{paper - PAPER['no_spg'][2]:+.2f}"
        lines.append(f"| {table} | {label} (`{variant}`) | {paper_text} | {paper_delta} | {text} | "
                     f"{len(values)} | {minmax} | {delta} | {stage1} | {params} | {seconds} |")
    seed_counts = sorted({len(v) for v in by_variant.values() if v})
    crop = settings["crop"]
    lines += [
        "",
        f"Budget `{budget}`: crops {crop[0]}x{crop[1]}, batch {settings['batch']}, decoder D={settings['decoder']}, "
        f"{settings['steps']} SGD steps (lr {settings['learning_rate']}, poly 0.9"
        f"{', stage-1 loss weight ' + str(settings['stage_weight']) if 'stage_weight' in settings else ''}), random scales "
        f"{settings['scales']}, flip; random encoder init; evaluated on "
        f"{'the first ' + str(settings['val_images']) if settings['val_images'] else 'all 101'} CamVid val images "
        f"(full 240x180 images, single scale). Mean ± sample standard deviation over seeds "
        f"(seeds run per variant: {seed_counts}; requested {seeds_requested}).",
    ]
    stds = [statistics.stdev([r["miou"] for r in v]) * 100 for v in by_variant.values() if len(v) > 1]
    means = [statistics.mean(r["miou"] for r in v) * 100 for v in by_variant.values() if v]
    if means:
        lines.append(f"- Spread of the variant means: {max(means) - min(means):.2f} points"
                     + (f"; median seed-to-seed standard deviation within a variant: {statistics.median(stds):.2f} "
                        f"points" if stds else "; with one seed per variant the seed noise is not measured") + ".")
    lines += separation_lines(by_variant)
    lines.append(
        "- Context: the paper's differences (0.1-1.4 points between the two-stage variants, 3.2 points for one vs "
        "two stages) come from 80k iterations (crop size not stated) with ImageNet-pretrained encoders on "
        "Cityscapes; these "
        "runs are minutes of CPU training from random weights, so they check that every variant trains and is "
        "scored identically and show how the variants behave early in training, not the paper's final ranking.")
    return "\n".join(lines)


def separation_lines(by_variant):
    """Which variants differ from the two-stage baseline by more than two standard errors of the difference."""
    base = [100 * r["miou"] for r in by_variant["no_spg"]]
    if len(base) < 2:
        return ["- Separation from the baseline: needs 2+ seeds per variant (not measured at this budget)."]
    beyond, within = [], []
    for variant, runs in by_variant.items():
        values = [100 * r["miou"] for r in runs]
        if variant == "no_spg" or len(values) < 2:
            continue
        delta = statistics.mean(values) - statistics.mean(base)
        error = math.sqrt(statistics.variance(values) / len(values) + statistics.variance(base) / len(base))
        (beyond if abs(delta) > 2 * error else within).append(f"`{variant}` {delta:+.2f} ± {error:.2f}")
    return [f"- Difference from the baseline ± its standard error (sqrt(s1²/n1 + s2²/n2)), mIoU points; "
            f"beyond 2 standard errors: {', '.join(beyond) or 'none'}; within: {', '.join(within) or 'none'}."]


def sensitivity_overrides(parser, args):
    """(budget overrides, results-file suffix) of --learning-rate / --stage-weight."""
    overrides, suffix = {}, ""
    if args.learning_rate is not None:
        if not args.learning_rate > 0:
            parser.error(f"--learning-rate must be positive, got {args.learning_rate}")
        overrides["learning_rate"] = args.learning_rate
        suffix += f"_lr{args.learning_rate:g}"
    if args.stage_weight is not None:
        if not args.stage_weight >= 0:
            parser.error(f"--stage-weight must be >= 0, got {args.stage_weight}")
        overrides["stage_weight"] = args.stage_weight
        suffix += f"_sw{args.stage_weight:g}"
    return overrides, suffix


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="smoke")
    parser.add_argument("--quick", action="store_true", help="same as --budget smoke")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per variant (default 1)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--results", default=None, help="JSON (default benchmarks/results/ablation_<budget>.json)")
    parser.add_argument("--fresh", action="store_true", help="ignore stored runs of this budget")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="minutes; no new run starts after this (stored runs are kept; resume later)")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--save-models", default=None, metavar="DIR",
                        help="also save every trained model as DIR/<variant>_seed<k>.keras")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="sensitivity: the budget's base learning rate replaced (own results file)")
    parser.add_argument("--stage-weight", type=float, default=None,
                        help="sensitivity: deep-supervision weight of stage-1 outputs (own results file)")
    parser.add_argument("--curve-steps", default="",
                        help="comma-separated steps at which to score (and, with --save-models, save) the model")
    args = parser.parse_args(argv)
    if args.quick:
        args.budget = "smoke"
    variants = _common.comma_choices(parser, args.variants, VARIANTS, "variant")
    overrides, suffix = sensitivity_overrides(parser, args)
    try:
        curve_steps = sorted({int(step) for step in args.curve_steps.split(",") if step})
    except ValueError:
        parser.error(f"--curve-steps must be comma-separated whole numbers, got {args.curve_steps!r}")
    if any(step <= 0 for step in curve_steps):
        parser.error(f"--curve-steps must be positive, got {args.curve_steps!r}")
    results_path = (Path(args.results) if args.results
                    else _common.RESULTS / f"ablation_{args.budget}{suffix}.json")
    stored = dict(runs=[], machines=[]) if args.fresh else load_results(results_path)

    def log(message):
        print(message, flush=True)

    machine = _common.Machine()
    root = _common.camvid_root(args.data_root)
    spec = dataset_spec("camvid", root)
    pairs = dataset_pairs("camvid", root, "val")
    if BUDGETS[args.budget]["val_images"]:
        pairs = pairs[: BUDGETS[args.budget]["val_images"]]
    done = {(r["variant"], r["seed"]) for r in stored["runs"]}
    started = time.perf_counter()
    for seed in range(args.seeds):
        for variant in variants:
            if (variant, seed) in done:
                log(f"{variant} seed {seed}: stored, skipped")
                continue
            if args.time_limit and time.perf_counter() - started > 60 * args.time_limit:
                log("time limit reached; resume with the same command")
                break
            stored["runs"].append(run_one(variant, seed, args.budget, root, spec, pairs, log,
                                          Path(args.save_models) if args.save_models else None,
                                          overrides, curve_steps))
            machine.sample_load()
            _common.write_json(results_path, stored)
    machine.finish()
    stored["machines"].append(dict(machine.to_dict(), command=_common.command_line()))
    _common.write_json(results_path, stored)

    machines = stored["machines"]
    loads = [s for m in machines for s in m["load_samples"]]
    minutes = sum((m["seconds"] or 0) for m in machines) / 60
    lines = [f"## Ablation (Tables 3 and 4) on CamVid, budget `{args.budget}`{suffix.replace('_', ' ')}", "",
             machine.markdown(), ""]
    if len(machines) > 1:
        lines += [f"- Table built from {len(machines)} invocations (resumed runs), {minutes:.1f} min in all; "
                  f"1-min load over all of them: min {min(loads):.2f}, max {max(loads):.2f}. Commands: "
                  + "; ".join(f"`{m['command']}`" for m in machines), ""]
    lines.append(table_markdown(args.budget, stored["runs"], args.seeds, overrides))
    markdown = "\n".join(lines) + "\n"
    _common.publish(f"ablation-{args.budget}{suffix.replace('_', '-')}", markdown, not args.no_doc)


if __name__ == "__main__":
    main()
