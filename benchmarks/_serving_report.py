"""The markdown of `benchmarks/serving_speed.py`: machine limit, speed tables against the
measured peak, CamVid accuracy and the REST answer sizes."""

from pathlib import Path

import _common
import _serving_answer

PRECISION = {"keras_f32": "float32", "saved_model_f32": "float32", "saved_model_uint8": "float32",
             "saved_model_png": "float32", "saved_model_bf16": "bfloat16", "tflite_int8": "int8",
             "onnx_f32": "float32", "onnx_int8": "int8", "openvino_f32": "float32", "openvino_bf16": "bfloat16",
             "openvino_int8": "int8"}
LABELS = {
    "keras_f32": "Keras float32 (BatchNorm layers)",
    "saved_model_f32": "SavedModel float32, BatchNorm folded",
    "saved_model_uint8": "SavedModel float32, `predict_images` (uint8)",
    "saved_model_png": "SavedModel float32, `serving_default` (PNG bytes)",
    "saved_model_bf16": "SavedModel bfloat16, BatchNorm folded",
    "tflite_int8": "TFLite int8 (XNNPACK)",
    "onnx_f32": "ONNX Runtime float32, folded",
    "onnx_int8": "ONNX Runtime static int8 (QDQ)",
    "openvino_f32": "OpenVINO float32",
    "openvino_bf16": "OpenVINO bfloat16",
    "openvino_int8": "OpenVINO int8 (NNCF)",
}
# Issue 28: the fastest path of each precision against the Keras model.
GOALS = {"float32": 1.5, "bfloat16": 2.5, "int8": 5.0}


def limit_lines(limits):
    """The machine-limit paragraph: clock and every instruction's peak, measured in this run."""
    if not limits:
        return ["Machine limit: not measured (no gcc).", ""]
    lines = [f"Machine limit, measured in this run on the {limits['cores']} cores it uses: effective clock "
             f"**{limits['clock_hz'] / 1e9:.2f} GHz** (a chain of dependent vector FMAs x their documented "
             f"{limits['fma_latency']}-cycle latency, all cores busy); peak of throughput-bound loops on every core: "
             + ", ".join(f"{name} **{v['macs_per_s'] / 1e9:.0f} GMAC/s** ({v['macs_per_cycle_per_core']:.1f} "
                         "MACs/cycle/core)" for name, v in limits["instructions"].items())
             + ". \"of peak\" divides by the fastest instruction of the path's precision ("
             + ", ".join(f"{p}: {v['instruction']}" for p, v in limits["precisions"].items())
             + "), \"of vector peak\" by its AVX-512 instruction."]
    avx_clock = limits["precisions"].get("float32", {}).get("avx_clock_hz")
    if avx_clock:
        lines.append(f"With the documented {limits['documented_fp32_macs_per_cycle']:g} float32 MACs/cycle/core, "
                     f"the clock under AVX-512 FMA load is {avx_clock / 1e9:.2f} GHz.")
    return lines + [""]


def peak_fractions(rate, precision, limits):
    """(of peak, of vector peak) as table cells for an achieved MAC/s `rate`."""
    if not limits or precision not in limits["precisions"]:
        return "n/a", "n/a"
    vector = [v["macs_per_s"] for name, v in limits["instructions"].items()
              if name.startswith(precision) and "AMX" not in name]
    peak = f"{100 * rate / limits['precisions'][precision]['macs_per_s']:.0f} %"
    return peak, (f"{100 * rate / vector[0]:.0f} %" if vector else "n/a")


def speed_table(cell, times, macs, limits):
    (height, width, batch) = cell
    lines = [f"### {height}x{width}, batch {batch}", "",
             "| Path | Latency (s) | n | min-max (s) | Images/s | vs Keras | GMAC/s | of peak | of vector peak |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    median = {name: _common.median(t) for name, t in times.items()}
    for name, values in times.items():
        rate = macs[(height, width)] * batch / median[name]
        speedup = median["keras_f32"] / median[name] if "keras_f32" in median else float("nan")
        goal = f" (goal {GOALS[PRECISION[name]]:.1f}x)" if name != "keras_f32" else ""
        peak, vector = peak_fractions(rate, PRECISION[name], limits)
        lines.append(f"| {LABELS[name]} | {median[name]:.3f} | {len(values)} | {min(values):.3f}-{max(values):.3f} "
                     f"| {batch / median[name]:.2f} | {speedup:.2f}x{goal} | {rate / 1e9:.1f} | {peak} | {vector} |")
    return lines + [""]


def results_markdown(machine, cells, macs, limits, accuracy, notes, model_description, val_count, answer=()):
    lines = ["## Serving speed: every engine against the measured peak", "", machine.markdown(), ""]
    lines += [f"Model: {model_description}. Latency = median of interleaved rounds (one call of each path per "
              "round) on the first CamVid val frames resized to the cell's size (natural images: what a PNG "
              "request decodes is a photo, not noise); images/s = batch / latency. Achieved GMAC/s = MACs of the "
              "padded input x batch / latency.", ""]
    lines += limit_lines(limits)
    for cell, times in cells.items():
        lines += speed_table(cell, times, macs, limits)
    if accuracy:
        lines += [f"### CamVid val ({val_count} images, each at its own size)", "",
                  f"| Path | mIoU (%) | change (points) | pixels equal to {LABELS[next(iter(accuracy))]} |",
                  "|---|---:|---:|---:|"]
        base = accuracy.get("keras_f32", {}).get("miou")
        for name, result in accuracy.items():
            change = f"{100 * (result['miou'] - base):+.2f}" if base is not None else "n/a"
            lines.append(f"| {LABELS[name]} | {100 * result['miou']:.2f} | {change} | "
                         f"{100 * result['agreement']:.3f} % |")
        lines.append("")
    lines += list(answer)
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def rest_answer(shared, num_classes, log):
    """Markdown lines and JSON of the REST answer costs of a 1024x2048 class map, both ways
    (`shared`: the shared data folder, holding cityscapes_sample)."""
    label = Path(shared) / "cityscapes_sample" / "gtFine" / "val" / "frankfurt" / \
        "frankfurt_000000_000294_gtFine_labelTrainIds.png"
    maps = {"a Cityscapes label resized to 1024x2048, 19 classes": (_serving_answer.cityscapes_class_map(label), 19),
            f"uniform random class ids, {num_classes} classes: the worst case for PNG":
                (_serving_answer.noise_class_map(num_classes), num_classes)}
    lines, costs = [], {}
    for description, (classes, classes_count) in maps.items():
        costs[description] = _serving_answer.answer_costs(classes, classes_count)
        log(f"REST answer ({description}): {costs[description]}")
        lines += _serving_answer.answer_markdown(costs[description], description)
    return lines, costs
