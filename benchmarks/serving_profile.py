"""Where the serving time goes, per layer type and per convolution kernel, at each precision
(issue 28: "say which layers keep it below [60 % of the peak]").

The folded float32 ONNX file of `spgnet_keras.export.export_onnx` at one fixed shape, compiled
by OpenVINO's CPU plugin at f32 and bf16 inference precision and quantised to int8 with NNCF
(the `openvino_*` paths of `benchmarks/serving_speed.py`, `benchmarks/_engines.py`), run with
the plugin's per-node counters on (`PERF_COUNT`). One engine for the three precisions, so the
shares compare; its per-node times are summed over the profiled calls and divided by their
number. Convolution MACs come from the compiled graph's `Convolution` / `GroupConvolution`
nodes (output elements x kernel height x kernel width x input channels per group), so a
convolution's achieved rate is its MACs / its own time, against the machine's peak for the
precision measured in the same run on the same cores (`benchmarks/_peak.py`).

Examples::

    python benchmarks/serving_profile.py --model runs/camvid_benchmark/model.keras
    python benchmarks/serving_profile.py --quick --no-doc     # random tiny model: checks the plumbing
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.setup_tensorflow_logging()

import _engines  # noqa: E402
import _peak  # noqa: E402
import numpy as np  # noqa: E402
from _serving_report import limit_lines, peak_fractions  # noqa: E402
from serving_speed import load_or_build_model, padded, parse_cells  # noqa: E402

from spgnet_keras.export import calibration_images, export_onnx  # noqa: E402

PRECISIONS = {"f32": "float32", "bf16": "bfloat16", "int8": "int8"}
CONVOLUTIONS = ("Convolution", "GroupConvolution")


# The model part a node belongs to, from the Keras layer names it carries (stageN_stem,
# stageN_stackK_blockJ_convI, stageN_upsampleK, stageN_csfaK, stageN_gap, stageN_head, ...).
PART = re.compile(r"stage\d+_(?:stem|stack\d+|csfa\d+|upsample\d+|gap|head|spg[a-z_]*?|classifier)(?=_|/|$)")


def short_name(name):
    """A node's name without the model prefix (`spg_net_prediction_1/`) and `/convolution`."""
    name = name.split("/", 1)[1] if "/" in name else name
    return name[: -len("/convolution")] if name.endswith("/convolution") else name


def model_part(name):
    """The model part of a node name (`stage1_stack4`, `stage2_upsample3`, ...) or "other"."""
    match = PART.search(name)
    return match.group(0) if match else "other"


def convolution_macs(model):
    """{friendly name: MACs} of every convolution node of an `openvino.Model` (static shapes)."""
    macs = {}
    for node in model.get_ordered_ops():
        kind = node.get_type_name()
        if kind not in CONVOLUTIONS:
            continue
        output = [int(v) for v in node.get_output_shape(0)]  # N, C_out, H, W
        weights = [int(v) for v in node.input(1).get_shape()]
        # Convolution weights: C_out, C_in, kH, kW; GroupConvolution: G, C_out/G, C_in/G, kH, kW.
        per_output = int(np.prod(weights[-3:]))
        macs[node.get_friendly_name()] = int(np.prod(output)) * per_output
    return macs


def profile_calls(runner, images, calls):
    """(median wall seconds, {node name: (type, exec type, mean seconds per call)})."""
    walls, nodes = [], defaultdict(lambda: [None, None, 0.0])
    for _ in range(calls):
        start = time.perf_counter()
        runner(images)
        walls.append(time.perf_counter() - start)
        for info in runner.request.profiling_info:
            if info.status != info.Status.EXECUTED:
                continue
            entry = nodes[info.node_name]
            entry[0], entry[1] = info.node_type, info.exec_type
            entry[2] += info.real_time.total_seconds() / calls
    return float(np.median(walls)), {name: tuple(entry) for name, entry in nodes.items()}


def summarise(wall, nodes, macs, precision, limits):
    """The numbers of one precision: per node type, per convolution kernel, the slowest convs."""
    by_type = defaultdict(lambda: dict(seconds=0.0, count=0))
    by_kernel = defaultdict(lambda: dict(seconds=0.0, count=0, macs=0))
    by_part = defaultdict(lambda: dict(seconds=0.0, conv_seconds=0.0, macs=0))
    convs = []
    for name, (node_type, exec_type, seconds) in nodes.items():
        by_type[node_type]["seconds"] += seconds
        by_type[node_type]["count"] += 1
        part = by_part[model_part(name)]
        part["seconds"] += seconds
        if node_type in CONVOLUTIONS:
            part["conv_seconds"] += seconds
            part["macs"] += macs.get(name, 0)
            kernel = by_kernel[exec_type]
            kernel["seconds"] += seconds
            kernel["count"] += 1
            kernel["macs"] += macs.get(name, 0)
            convs.append(dict(name=name, exec_type=exec_type, seconds=seconds, macs=macs.get(name, 0)))
    conv_seconds = sum(c["seconds"] for c in convs)
    matched = sum(c["macs"] for c in convs)
    return dict(precision=PRECISIONS[precision], wall=wall, summed=sum(v["seconds"] for v in by_type.values()),
                by_type=dict(by_type), by_kernel=dict(by_kernel), by_part=dict(by_part), conv_seconds=conv_seconds,
                conv_macs=sum(macs.values()), matched_macs=matched,
                conv_rate=matched / conv_seconds if conv_seconds else 0.0,
                slowest=sorted(convs, key=lambda c: -c["seconds"])[:8],
                peak=peak_fractions(matched / conv_seconds if conv_seconds else 0.0, PRECISIONS[precision], limits))


def precision_markdown(name, summary, limits):
    total = summary["summed"]
    lines = [f"### OpenVINO {name}: wall {1e3 * summary['wall']:.0f} ms per call, "
             f"{1e3 * total:.0f} ms summed over the nodes", "",
             "| Node type | ms per call | share | nodes |", "|---|---:|---:|---:|"]
    for node_type, value in sorted(summary["by_type"].items(), key=lambda item: -item[1]["seconds"]):
        if value["seconds"] < 0.0005 * total:
            continue
        lines.append(f"| `{node_type}` | {1e3 * value['seconds']:.1f} | {100 * value['seconds'] / total:.1f} % "
                     f"| {value['count']} |")
    lines += ["", "| Convolution kernel (exec type) | convs | GMACs | ms per call | GMAC/s | of peak |",
              "|---|---:|---:|---:|---:|---:|"]
    for kernel, value in sorted(summary["by_kernel"].items(), key=lambda item: -item[1]["seconds"]):
        rate = value["macs"] / value["seconds"] if value["seconds"] else 0.0
        lines.append(f"| `{kernel}` | {value['count']} | {value['macs'] / 1e9:.2f} | {1e3 * value['seconds']:.1f} "
                     f"| {rate / 1e9:.1f} | {peak_fractions(rate, summary['precision'], limits)[0]} |")
    lines += ["", "| Model part | ms per call | share | conv GMACs | conv GMAC/s | of peak |",
              "|---|---:|---:|---:|---:|---:|"]
    for part, value in sorted(summary["by_part"].items(), key=lambda item: -item[1]["seconds"]):
        if value["seconds"] < 0.005 * total:
            continue
        rate = value["macs"] / value["conv_seconds"] if value["conv_seconds"] else 0.0
        lines.append(f"| `{part}` | {1e3 * value['seconds']:.1f} | {100 * value['seconds'] / total:.1f} % "
                     f"| {value['macs'] / 1e9:.2f} | {rate / 1e9:.1f} | "
                     f"{peak_fractions(rate, summary['precision'], limits)[0] if rate else '-'} |")
    conv_share = summary["conv_seconds"] / total if total else 0.0
    lines += ["", f"Convolutions: {100 * conv_share:.1f} % of the summed node time, "
              f"{summary['matched_macs'] / 1e9:.2f} of {summary['conv_macs'] / 1e9:.2f} GMACs matched to a profiled "
              f"node, {summary['conv_rate'] / 1e9:.1f} GMAC/s over their own time ({summary['peak'][0]} of the "
              f"{summary['precision']} peak). Everything else: {1e3 * (total - summary['conv_seconds']):.0f} ms "
              f"({100 * (1 - conv_share):.1f} %).", "",
              "Slowest convolutions: " + "; ".join(
                  f"`{short_name(c['name'])}` {1e3 * c['seconds']:.1f} ms, {c['macs'] / 1e9:.2f} GMACs, "
                  f"{(c['macs'] / c['seconds'] if c['seconds'] else 0) / 1e9:.0f} GMAC/s ({c['exec_type']})"
                  for c in summary["slowest"][:4]) + ".", ""]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="CamVid-trained .keras (benchmarks/train_camvid.py makes one)")
    parser.add_argument("--data-root", default=None, help="CamVid root (calibration images for int8)")
    parser.add_argument("--cell", default="512x1024:1", help="HxW:batch (default 512x1024:1)")
    parser.add_argument("--precisions", default="f32,bf16,int8", help="subset of f32,bf16,int8")
    parser.add_argument("--calls", type=int, default=5, help="profiled calls per precision (after one warm-up)")
    parser.add_argument("--calibration-images", type=int, default=48)
    parser.add_argument("--threads", type=int, default=_peak.run_cores())
    parser.add_argument("--microbenchmark-iterations", type=int, default=200_000_000)
    parser.add_argument("--work", default="runs/serving_profile", help="folder for the ONNX file")
    parser.add_argument("--quick", action="store_true", help="64x96:1, 2 calls, 4 calibration images")
    parser.add_argument("--section", default=None, help="docs/benchmarks.md section (default serving-profile)")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.cell, args.calls, args.calibration_images = "64x96:1", 2, 4
        args.microbenchmark_iterations = 20_000_000
    precisions = [p for p in args.precisions.split(",") if p]
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown:
        parser.error(f"unknown precision(s) {unknown}; choose from {list(PRECISIONS)}")
    if _engines.available(["openvino_f32"]) != ["openvino_f32"]:
        raise SystemExit("openvino and nncf are not installed: pip install -e .[openvino]")
    (height, width, batch), = parse_cells(args.cell)
    section = args.section or ("serving-profile-quick" if args.quick else "serving-profile")

    def log(message):
        print(message, flush=True)

    machine = _common.Machine()
    limits = _peak.machine_limits(args.microbenchmark_iterations, _peak.run_cores(), log)
    model, description = load_or_build_model(args, log)
    shape = (batch, padded(height), padded(width), 3)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx(model, work / f"f32_{shape[1]}x{shape[2]}_b{batch}.onnx", shape)
    calibration = None
    if "int8" in precisions:
        root = _common.camvid_root(args.data_root)
        calibration = calibration_images(root / "train" / "images", shape[1], shape[2], limit=args.calibration_images)
    images = np.random.default_rng(0).uniform(0, 255, shape).astype("float32")
    summaries = {}
    for precision in precisions:
        runner = _engines.openvino_runner(onnx_path, precision, args.threads, calibration, profile=True)
        runner(images)
        wall, nodes = profile_calls(runner, images, args.calls)
        summaries[precision] = summarise(wall, nodes, convolution_macs(runner.model), precision, limits)
        machine.sample_load()
        share = summaries[precision]["conv_seconds"] / max(summaries[precision]["summed"], 1e-12)
        log(f"{precision}: wall {wall:.3f} s, convolutions {100 * share:.0f} % of node time at "
            f"{summaries[precision]['conv_rate'] / 1e9:.1f} GMAC/s")
        del runner
    machine.finish()
    _common.write_json(_common.RESULTS / f"{section}.json",
                       dict(machine=machine.to_dict(), command=_common.command_line(), limits=limits, model=description,
                            shape=shape, profiles=summaries))
    lines = [f"## Serving profile: where the time goes at {shape[1]}x{shape[2]}, batch {batch} (OpenVINO CPU)", "",
             machine.markdown(), "", *limit_lines(limits), f"Model: {description}. {args.calls} profiled calls per precision "
             f"after one warm-up; {args.threads} threads; per-node times from the plugin's counters (`PERF_COUNT`), "
             "nodes after the plugin's fusions (a convolution's time includes the bias, activation and "
             "(de)quantisation fused into it).", ""]
    for precision, summary in summaries.items():
        lines += precision_markdown(precision, summary, limits)
    _common.publish(section, "\n".join(lines), not args.no_doc, log)


if __name__ == "__main__":
    main()
