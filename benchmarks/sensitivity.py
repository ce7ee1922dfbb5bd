"""SPG against the two-stage baseline as the recipe changes, and over training (issue 18's "why").

Reads what `benchmarks/ablation.py` stored for one budget (`--budget`, default `medium`):

- `ablation_<budget>.json`: the recipe's runs (all seeds);
- `ablation_<budget>_lr<x>.json` / `ablation_<budget>_sw<w>.json`: the same budget with the
  base learning rate or the stage-1 loss weight changed (`ablation.py --learning-rate` /
  `--stage-weight`);
- `ablation_<budget>_curve.json`: runs with `--curve-steps` (mIoU at intermediate steps), and
  `attention_over_training.json` (`attention_stats.py --knockouts mean` on the models those
  runs saved) for the constant-gate knockout at each step.

Each table row puts `spg_sigmoid` beside `no_spg` trained on the same seed (same initial
weights where the layers agree, same batches). Training on the CPU is not bitwise reproducible,
and the recipe's reruns of a seed show that pairing removes little noise, so the noise level is
the recipe's run-to-run spread over all its runs (seeds and reruns).

Example::

    python benchmarks/sensitivity.py --budget medium
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

BASELINE, SPG = "no_spg", "spg_sigmoid"
SETTING = re.compile(r"^_(lr|sw)([0-9.e+-]+)$")


def load_runs(path):
    return json.loads(Path(path).read_text())["runs"] if Path(path).exists() else []


def by_seed(runs, variant):
    return {r["seed"]: r for r in runs if r["variant"] == variant}


def pct(value):
    return "-" if value is None else f"{100 * value:.2f}"


def paired(runs):
    """[(seed, baseline run, SPG run)] for the seeds both variants ran."""
    base, spg = by_seed(runs, BASELINE), by_seed(runs, SPG)
    return [(seed, base[seed], spg[seed]) for seed in sorted(set(base) & set(spg))]


def setting_rows(results, budget):
    """(label, runs) for the recipe, its reruns (the --curve-steps runs) and every stored sensitivity file."""
    rows = [("recipe (lr 0.02, stage-1 weight 1.0)", load_runs(results / f"ablation_{budget}.json")),
            ("recipe, rerun (`--curve-steps`)", load_runs(results / f"ablation_{budget}_curve.json"))]
    for path in sorted(results.glob(f"ablation_{budget}_*.json")):
        match = SETTING.match(path.stem[len(f"ablation_{budget}"):])
        if match:
            name = {"lr": "learning rate", "sw": "stage-1 loss weight"}[match.group(1)]
            rows.append((f"{name} {match.group(2)}", load_runs(path)))
    return rows


def recipe_noise(recipe_runs):
    """Lines on the recipe's run-to-run noise: per-variant spread, the unpaired difference and its
    standard error, reruns of a seed, and how far a one-pair setting must move to be beyond noise."""
    values = {v: [100 * r["miou"] for r in recipe_runs if r["variant"] == v] for v in (BASELINE, SPG)}
    if min(len(v) for v in values.values()) < 2:
        return []
    base, spg = values[BASELINE], values[SPG]
    delta = statistics.mean(spg) - statistics.mean(base)
    error = math.sqrt(statistics.variance(spg) / len(spg) + statistics.variance(base) / len(base))
    pooled = math.sqrt((statistics.variance(spg) * (len(spg) - 1) + statistics.variance(base) * (len(base) - 1))
                       / (len(spg) + len(base) - 2))
    beyond = 2 * math.sqrt(2 * pooled ** 2 + error ** 2)
    lines = ["", f"Recipe, all runs (seeds and reruns): baseline {statistics.mean(base):.2f} ± "
                 f"{statistics.stdev(base):.2f} (n = {len(base)}), SPG {statistics.mean(spg):.2f} ± "
                 f"{statistics.stdev(spg):.2f} (n = {len(spg)}); **SPG - baseline {delta:+.2f} ± {error:.2f}** "
                 f"(standard error, unpaired). Run-to-run standard deviation of one model's mIoU (pooled): "
                 f"{pooled:.2f} points, so the difference of one SPG/baseline pair is uncertain by about "
                 f"±{math.sqrt(2) * pooled:.2f}, and a setting measured with one pair differs from the recipe "
                 f"beyond noise only if its difference moves by more than {beyond:.2f} points (2 x sqrt(2 x "
                 f"{pooled:.2f}² + {error:.2f}²))."]
    reruns = {}
    for run in recipe_runs:
        reruns.setdefault((run["variant"], run["seed"]), []).append(100 * run["miou"])
    repeated = [f"`{variant}` seed {seed}: {' / '.join(f'{v:.2f}' for v in got)}"
                for (variant, seed), got in sorted(reruns.items()) if len(got) > 1]
    if repeated:
        lines.append(f"\nSame seed, same batches, trained twice: {'; '.join(repeated)}. The training stream and "
                     f"the initial weights are identical between reruns, but training is not bitwise "
                     f"reproducible on this CPU (`benchmarks/reproducibility.py`: the losses part from step 2, "
                     f"with or without `enable_op_determinism()` and oneDNN), and 400 steps at lr 0.02 from "
                     f"random weights amplify the round-off into differences as large as the seed-to-seed "
                     f"ones, so pairing by seed does not remove noise here.")
    return lines


def sensitivity_table(rows):
    lines = ["| Setting | Seed | Baseline mIoU | SPG mIoU | SPG - baseline | Baseline stage 1 | SPG stage 1 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label, runs in rows:
        for seed, base, spg in paired(runs):
            lines.append(f"| {label} | {seed} | {pct(base['miou'])} | {pct(spg['miou'])} | "
                         f"{100 * (spg['miou'] - base['miou']):+.2f} | {pct(base['stage1_miou'])} | "
                         f"{pct(spg['stage1_miou'])} |")
    return lines + recipe_noise(rows[0][1] + rows[1][1])


def attention_by_step(path):
    """{step (None: the final model): attention_stats record} of the curve models."""
    if not Path(path).exists():
        return {}
    points = {}
    for record in json.loads(Path(path).read_text())["models"]:
        match = re.search(r"_step(\d+)\.keras$", record["model"])
        points[int(match.group(1)) if match else None] = record
    return points


def attention_cells(record):
    """Gate spatial std, top-15 class ratio, constant-gate and zero-gate mIoU changes (points)."""
    if record is None:
        return ["-"] * 4
    stage = record["stages"][0]
    final = record["miou"].get("final", {}).get("miou")
    knock = [f"{100 * (record['knockouts'][mode]['miou'] - final):+.2f}"
             if final is not None and mode in record["knockouts"] else "-" for mode in ("mean", "zero")]
    return [f"{stage['gate']['spatial_std']:.2f}", f"{stage['mean_top_ratio']:.2f}", *knock]


def curve_table(curve_runs, attention, steps):
    lines = ["| Step | Baseline mIoU | Baseline stage 1 | SPG mIoU | SPG stage 1 | SPG - baseline | "
             "Stage 1: SPG - baseline | Gate spatial std | Class ratio (top 15) | Constant gate | Gate 0 |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for seed, base, spg in paired(curve_runs):
        base_points = {p["step"]: p for p in base.get("curve", [])}
        spg_points = {p["step"]: p for p in spg.get("curve", [])}
        for step in sorted(set(base_points) & set(spg_points)):
            b, s = base_points[step], spg_points[step]
            cells = " | ".join(attention_cells(attention.get(step if step != steps else None)))
            stage1 = (f"{100 * (s['stage1_miou'] - b['stage1_miou']):+.2f}"
                      if s["stage1_miou"] is not None and b["stage1_miou"] is not None else "-")
            lines.append(f"| {step} | {pct(b['miou'])} | {pct(b['stage1_miou'])} | {pct(s['miou'])} | "
                         f"{pct(s['stage1_miou'])} | {100 * (s['miou'] - b['miou']):+.2f} | {stage1} | {cells} |")
        lines += ["", f"Seed {seed}; the poly schedule runs to step {steps} in both runs, so an intermediate "
                      f"step is a model in the middle of its schedule (learning rate still high), not a shorter "
                      f"run; with batch-norm statistics of a model still moving fast, the mid-training points "
                      f"jump (the baseline at step 300). Attention columns (`attention_stats.py`, SPG model): "
                      f"the gate's mean spatial standard deviation; the class-selectivity ratio (how much more "
                      f"a class's 15 top attention channels open on that class, averaged over classes); "
                      f"'Constant gate' / 'Gate 0': change of the final mIoU when the gate is replaced at test "
                      f"time by its per-channel val mean / by 0 (negative: the spatial gate / the excited branch "
                      f"helps)."]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="medium")
    parser.add_argument("--results-dir", default=str(_common.RESULTS))
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    results = Path(args.results_dir)
    rows = setting_rows(results, args.budget)
    if not paired(rows[0][1]):
        parser.error(f"no paired {BASELINE}/{SPG} runs in {results}/ablation_{args.budget}.json; "
                     f"run benchmarks/ablation.py --budget {args.budget} first")
    steps = rows[0][1][0]["settings"]["steps"]
    lines = [f"## SPG vs the two-stage baseline: recipe sensitivity and training curve (budget `{args.budget}`)",
             "", f"Made by `{_common.command_line()}` from the stored runs of `benchmarks/ablation.py` "
             f"(commands in the section text below). mIoU on all 101 CamVid val images, single scale.", "",
             "### Recipe sensitivity", ""]
    lines += sensitivity_table(rows)
    curve_runs = load_runs(results / f"ablation_{args.budget}_curve.json")
    if paired(curve_runs):
        lines += ["", "### Over training", ""]
        lines += curve_table(curve_runs, attention_by_step(results / "attention_over_training.json"), steps)
    markdown = "\n".join(lines) + "\n"
    _common.publish(f"sensitivity-{args.budget}", markdown, not args.no_doc)


if __name__ == "__main__":
    main()
