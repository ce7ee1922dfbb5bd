"""Serving speed and accuracy of the export paths, timed side by side in one run.

Paths (each computes the class map of a float32 RGB 0-255 batch):

- `keras_f32`: the Keras model as trained (BatchNorm layers), in the served graph's
  padding / crop / argmax (`spgnet_keras.export.Segmenter` in a `tf.function`).
- `saved_model_f32`: the SavedModel of `spgnet export` (BatchNorm folded), signature
  `predict_images_float`.
- `saved_model_uint8` / `saved_model_png`: the same SavedModel's `predict_images` (the
  batch as uint8) and `serving_default` (each image as PNG bytes, encoded before the clock
  starts: the time includes the PNG decode in the graph), for the cost of the encoded input.
- `saved_model_bf16`: the same with `--precision bfloat16`.
- `tflite_int8`: `spgnet export --format tflite --quantize int8` at the cell's padded
  size (calibrated on CamVid train images), LiteRT with XNNPACK, `--threads` threads;
  the input is padded with the mean colour outside, the logits cropped and argmaxed in numpy.
- `onnx_f32`: the folded float32 ONNX file in ONNX Runtime (CPU provider), same handling.
- `onnx_int8`: that file quantised statically by ONNX Runtime (QDQ, per-channel int8
  weights, uint8 activations, calibrated as `tflite_int8`), same handling.
- `openvino_f32` / `openvino_bf16` / `openvino_int8`: that file converted by OpenVINO
  (`openvino.convert_model`), compiled for the CPU at f32 / bf16 inference precision, or
  quantised with NNCF (`nncf.quantize`, calibrated as `tflite_int8`); `--threads` threads.

Each cell (`HxW:batch`; default 512x1024 batch 1 and a CamVid-size batch, 180x240 batch 8:
the shared CamVid copy is at half resolution)
gets warm-up calls, then interleaved rounds (one call of each path per round; medians).
MACs from `spgnet_keras.profiler.count_macs` (the padded input); achieved MAC/s = MACs x
batch / median latency, compared with the machine's limit for the path's precision, measured
in the same run on the cores the run uses (`benchmarks/_peak.py`: the effective clock and the
peak of each precision's fastest instruction: AVX-512 FMA, VDPBF16PS / AMX TDPBF16PS,
VPDPBUSD / AMX TDPBUSD).

Then the mIoU of every path on CamVid val (each image at its own size; the fixed-shape
paths use files of the image's padded size, the image padded with the mean colour as the
model pads it), and the fraction of val pixels whose
class equals `keras_f32`'s. The load average is recorded at the start, after every round
and at the end. Last, the size and the encode / decode time of a 1024x2048 class map as a
TF Serving REST answer, an int32 list against `predict_classes_png`'s base64 PNG
(`benchmarks/_serving_answer.py`; `--answer-only` measures only that).

Examples::

    python benchmarks/serving_speed.py --model runs/camvid_benchmark/model.keras
    python benchmarks/serving_speed.py --model runs/camvid_benchmark/model.keras --cells 512x1024:1,360x480:8
    python benchmarks/serving_speed.py --quick --no-doc     # tiny random model, tiny sizes: checks the plumbing
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.setup_tensorflow_logging()

import _engines  # noqa: E402
import _peak  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _serving_report import LABELS, rest_answer, results_markdown  # noqa: E402

from spgnet_keras import SPGNet, preprocessing  # noqa: E402
from spgnet_keras.constants import OUTPUT_STRIDE  # noqa: E402
from spgnet_keras.data import (
    load_image,  # noqa: E402
    load_label,  # noqa: E402
)
from spgnet_keras.export import (  # noqa: E402
    Segmenter,
    calibration_images,
    export_int8_tflite,
    export_onnx,
    export_saved_model,
    open_runner,
)
from spgnet_keras.profiler import count_macs  # noqa: E402
from spgnet_keras.scoring import confusion_matrix, mean_iou_from_confusion  # noqa: E402

PATHS = tuple(LABELS)
SAVED_MODEL_SIGNATURES = {"saved_model_f32": "predict_images_float", "saved_model_uint8": "predict_images",
                          "saved_model_png": "serving_default"}
ONNX_ENGINES = ("onnx_f32", "onnx_int8", "openvino_f32", "openvino_bf16", "openvino_int8")


# ----------------------------------------------------------------------------- paths

def padded(size):
    return -(-size // OUTPUT_STRIDE) * OUTPUT_STRIDE


def float_request(images):
    return tf.constant(images)


def uint8_request(images):
    return tf.constant(np.clip(np.round(images), 0, 255).astype(np.uint8))


def png_request(images):
    return tf.constant([tf.io.encode_png(image).numpy() for image in uint8_request(images)])


class DynamicPath:
    """A path taking any height/width: a tf.function or a SavedModel signature returning classes,
    given the request `make_request(images)` builds (before the clock starts)."""

    def __init__(self, function, make_request=float_request):
        self.function, self.make_request = function, make_request

    def request(self, images):
        return self.make_request(images)

    def run(self, request):
        return self.function(request)["classes"].numpy()

    def classes(self, images):
        return self.run(self.request(images))


class FixedShapePath:
    """A fixed-shape .tflite / .onnx / OpenVINO runner: pads the batch (mean colour; missing images
    by repetition) to its input shape and crops the runner's class ids (`classes`: a numpy argmax
    of the logits for LiteRT and ONNX Runtime, the plugin's own for OpenVINO)."""

    def __init__(self, runner):
        self.runner = runner
        self.batch, self.height, self.width = (int(v) for v in runner.input_shape[:3])

    def request(self, images):
        return images

    def run(self, images):
        return self.classes(images)

    def classes(self, images):
        count, height, width = images.shape[:3]
        if count > self.batch or height > self.height or width > self.width:
            raise ValueError(f"a {images.shape} batch does not fit the file's input {self.runner.input_shape}")
        batch = preprocessing.pad_bottom_right(tf.constant(images), self.height, self.width).numpy()
        if count < self.batch:
            batch = np.concatenate([batch, np.repeat(batch[:1], self.batch - count, axis=0)])
        return self.runner.classes(batch)[:count, :height, :width]


def dynamic_paths(model, names, work, log):
    """The paths that take any image size: {name: DynamicPath}."""
    segmenter = Segmenter(model)
    paths = {}
    if "keras_f32" in names:
        # autograph=False, as the SavedModel endpoints are traced (the Segmenter is written for it).
        paths["keras_f32"] = DynamicPath(tf.function(segmenter.__call__, jit_compile=False, autograph=False))
    requests = {"saved_model_uint8": uint8_request, "saved_model_png": png_request}
    for folder_name, precision, served in (("saved_model_f32", "float32", tuple(SAVED_MODEL_SIGNATURES)),
                                           ("saved_model_bf16", "bfloat16", ("saved_model_bf16",))):
        if not set(served) & set(names):
            continue
        start = time.perf_counter()
        folder = export_saved_model(model, work / folder_name / "1", precision=precision, overwrite=True)
        signatures = tf.saved_model.load(str(folder)).signatures
        for name in (n for n in served if n in names):
            signature = signatures[SAVED_MODEL_SIGNATURES.get(name, "predict_images_float")]
            paths[name] = DynamicPath(signature, requests.get(name, float_request))
        log(f"exported {folder_name} ({time.perf_counter() - start:.0f} s)")
    return paths


def fixed_shape_paths(model, cell, names, work, calibration_folder, calibration_count, threads, log, notes):
    """The fixed-shape files for one (height, width, batch) cell: {name: FixedShapePath}."""
    height, width, batch = cell
    shape = (batch, padded(height), padded(width), 3)
    paths = {}
    calibration = None
    if {"tflite_int8", "onnx_int8", "openvino_int8"} & set(names):
        calibration = calibration_images(calibration_folder, shape[1], shape[2], limit=calibration_count)
    if "tflite_int8" in names:
        start = time.perf_counter()
        path = export_int8_tflite(model, work / f"int8_{shape[1]}x{shape[2]}_b{batch}.tflite", shape, calibration)
        runner = open_runner(path, num_threads=threads)
        if runner.delegate != "XNNPACK":
            notes.append(f"tflite_int8 at {shape}: {runner.delegate}")
        paths["tflite_int8"] = FixedShapePath(runner)
        log(f"exported tflite_int8 {shape} on {len(calibration)} calibration images, delegate "
            f"{runner.delegate} ({time.perf_counter() - start:.0f} s)")
    if set(ONNX_ENGINES) & set(names):
        start = time.perf_counter()
        path = export_onnx(model, work / f"f32_{shape[1]}x{shape[2]}_b{batch}.onnx", shape)
        log(f"exported the float32 ONNX file {shape} ({time.perf_counter() - start:.0f} s)")
        for name in (n for n in ONNX_ENGINES if n in names):
            start = time.perf_counter()
            paths[name] = FixedShapePath(onnx_engine(name, path, threads, calibration))
            log(f"built {name} {shape} ({time.perf_counter() - start:.0f} s)")
    return paths


def onnx_engine(name, onnx_path, threads, calibration):
    """The runner of an engine of the float32 ONNX file `onnx_path` (see the module docstring)."""
    if name == "onnx_f32":
        return open_runner(onnx_path, num_threads=threads)
    if name == "onnx_int8":
        quantised = _engines.onnx_static_int8(onnx_path, onnx_path.with_name(onnx_path.stem + "_qdq.onnx"), calibration)
        return open_runner(quantised, num_threads=threads)
    return _engines.openvino_runner(onnx_path, _engines.OPENVINO_PRECISIONS[name], threads, calibration)


# ----------------------------------------------------------------------------- timing and accuracy

def timed_call(path, images):
    request = path.request(images)
    start = time.perf_counter()
    path.run(request)
    return time.perf_counter() - start


def benchmark_cell(paths, images, repeats, warmup, budget, machine, log):
    """{path: [seconds per call]} from interleaved rounds."""
    for name, path in paths.items():
        for _ in range(warmup):
            log(f"  warm-up {name}: {timed_call(path, images):.3f} s")
    times = defaultdict(list)
    start = time.perf_counter()
    for round_index in range(repeats):
        for name, path in paths.items():
            times[name].append(timed_call(path, images))
        machine.sample_load()
        elapsed = time.perf_counter() - start
        log(f"  round {round_index + 1}/{repeats} ({elapsed:.0f} s, load {machine.load_samples[-1]:.2f}): "
            + ", ".join(f"{n} {t[-1]:.3f}" for n, t in times.items()))
        if budget and elapsed > budget and round_index + 1 >= 2:
            log(f"  budget of {budget} s reached after {round_index + 1} rounds")
            break
    return dict(times)


def camvid_accuracy(paths, pairs, num_classes, log):
    """{path: (mIoU, fraction of pixels equal to keras_f32's classes)} on (image, mask) pairs."""
    matrices = {name: np.zeros((num_classes, num_classes), np.int64) for name in paths}
    same = defaultdict(int)
    total = 0
    for index, (image_path, mask_path) in enumerate(pairs):
        image = load_image(image_path).astype("float32")[None]
        label = load_label(mask_path)
        reference = None
        for name, path in paths.items():
            classes = path.classes(image)[0]
            matrices[name] += confusion_matrix(label, classes, num_classes)
            if reference is None:
                reference = classes
            same[name] += int(np.sum(classes == reference))
        total += reference.size
        if (index + 1) % 20 == 0:
            log(f"  evaluated {index + 1}/{len(pairs)} val images")
    first = next(iter(paths))
    return {name: dict(miou=mean_iou_from_confusion(matrices[name]), same_as=first, agreement=same[name] / total)
            for name in paths}


# ----------------------------------------------------------------------------- report

# ----------------------------------------------------------------------------- main

def parse_cells(text):
    cells = []
    for item in text.split(","):
        size, _, batch = item.partition(":")
        height, width = (int(v) for v in size.lower().split("x"))
        cells.append((height, width, int(batch or 1)))
    return cells


def load_or_build_model(args, log):
    if args.model:
        import spgnet_keras  # noqa: F401  (registers the layers)

        model = keras.saving.load_model(args.model, compile=False)
        return model, f"`{args.model}` ({model.num_classes} classes, backbones {list(model.stage_backbones)}, "\
                      f"D={model.decoder_channels})"
    if not args.quick:
        raise SystemExit("--model PATH (a CamVid-trained .keras, e.g. from benchmarks/train_camvid.py) is required "
                         "without --quick")
    keras.utils.set_random_seed(0)
    log("--quick without --model: a random 1xR18, D=16, 11-class SPGNet (plumbing only; numbers meaningless)")
    return SPGNet(11, backbones=("resnet18",), decoder_channels=16), "random 1xR18 D=16 (quick run)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="CamVid-trained .keras (benchmarks/train_camvid.py makes one)")
    parser.add_argument("--data-root", default=None,
                        help="CamVid root (default: $SPGNET_DATA_DIR or ../shared/data/camvid)")
    parser.add_argument("--cells", default="512x1024:1,180x240:8",
                        help="HxW:batch list (default 512x1024:1,180x240:8: the shared CamVid is 240x180)")
    parser.add_argument("--paths", default=None,
                        help="subset of " + ",".join(PATHS) + " (default: all; the OpenVINO ones where openvino and "
                        "nncf are installed: pip install -e .[openvino])")
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds per cell (default 9)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up calls per path and cell (default 2)")
    parser.add_argument("--budget", type=float, default=900, help="seconds of timed rounds per cell (default 900)")
    parser.add_argument("--calibration-images", type=int, default=200, help="CamVid train images to calibrate int8")
    parser.add_argument("--val-images", type=int, default=0, help="CamVid val images to score (default 0 = all)")
    parser.add_argument("--threads", type=int, default=_peak.run_cores(),
                        help="TFLite / ONNX Runtime / OpenVINO threads (default: the cores this process may use)")
    parser.add_argument("--microbenchmark-iterations", type=int, default=200_000_000)
    parser.add_argument("--fma-latency", type=int, default=4,
                        help="documented latency of a vector FMA in cycles "
                        "(4 on Skylake-SP..Sapphire Rapids, Zen 2..5)")
    parser.add_argument("--documented-fp32-macs-per-cycle", type=float, default=None,
                        help="the CPU's documented float32 FMA MACs per cycle per core (e.g. 32 for two AVX-512 FMA "
                        "units): also report the clock under AVX-512 load = measured FMA rate / this")
    parser.add_argument("--work", default="runs/serving_speed", help="folder for the exported files")
    parser.add_argument("--overwrite", action="store_true", help="replace the exports of an earlier run in --work")
    parser.add_argument("--quick", action="store_true",
                        help="64x96:2 and 180x240:1, 2 rounds, 4 calibration / 3 val images, short microbenchmark; "
                        "without --model a random 1xR18 D=16 SPGNet")
    parser.add_argument("--section", default=None, help="docs/benchmarks.md section (default serving-speed)")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--answer-only", action="store_true",
                        help="only the REST answer sizes and encode / decode times (no model, no timing of paths)")
    parser.add_argument("--json", default=None, help="results JSON (default benchmarks/results/<section>.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.cells, args.repeats, args.warmup = "64x96:2,180x240:1", 2, 1
        args.calibration_images, args.val_images = 4, args.val_images or 3
        args.microbenchmark_iterations = 20_000_000
    cells = parse_cells(args.cells)
    names = [n for n in args.paths.split(",") if n] if args.paths else _engines.available(PATHS)
    unknown = sorted(set(names) - set(PATHS))
    if unknown:
        parser.error(f"unknown path(s) {unknown}; choose from {PATHS}")
    section = args.section or ("serving-answer" if args.answer_only else "serving-quick" if args.quick
                               else "serving-speed")
    json_path = Path(args.json) if args.json else _common.RESULTS / f"{section}.json"
    root = _common.camvid_root(args.data_root)
    work = Path(args.work)
    if work.is_dir() and any(work.iterdir()) and not args.overwrite:
        parser.error(f"{work} is not empty (the exports would replace files in it); pass --overwrite or another --work")
    work.mkdir(parents=True, exist_ok=True)

    def log(message):
        print(message, flush=True)

    machine = _common.Machine()
    log(f"load average at start: {machine.load_start}")
    if args.answer_only:
        answer, costs = rest_answer(root.parent, 19, log)
        log("\n".join(answer))
        machine.finish()
        _common.write_json(json_path, dict(machine=machine.to_dict(), command=_common.command_line(), answer=costs))
        return
    limits = _peak.machine_limits(args.microbenchmark_iterations, _peak.run_cores(), log,
                                  documented_fp32=args.documented_fp32_macs_per_cycle, fma_latency=args.fma_latency)
    model, description = load_or_build_model(args, log)
    num_classes = int(model.num_classes)
    macs = {(h, w): count_macs(model, h, w) for h, w, _ in cells}
    notes = []
    fixed_arguments = (names, work, root / "train" / "images", args.calibration_images, args.threads, log, notes)
    dynamic = dynamic_paths(model, names, work, log)
    paths = {cell: {**dynamic, **fixed_shape_paths(model, cell, *fixed_arguments)} for cell in cells}
    results, payload = {}, {}
    for cell in cells:
        height, width, batch = cell
        log(f"cell {height}x{width} batch {batch}")
        images = calibration_images(root / "val" / "images", height, width, limit=batch)  # natural images, resized
        results[cell] = benchmark_cell(paths[cell], images, args.repeats, args.warmup, args.budget, machine, log)
        payload = dict(machine=machine.to_dict(), command=_common.command_line(), limits=limits,
                       cells={f"{h}x{w}:b{b}": r for (h, w, b), r in results.items()},
                       macs={f"{h}x{w}": m for (h, w), m in macs.items()})
        _common.write_json(json_path, payload)
    from spgnet_keras.data import camvid_files

    pairs = camvid_files(root, "val")
    pairs = pairs[: args.val_images] if args.val_images else pairs
    # Each val image at its own size: the fixed-shape files of a cell with the same padded size
    # (the image padded as the model pads it), else files exported for that size.
    camvid_size = load_image(pairs[0][0]).shape[:2]
    same_size = [c for c in cells if (padded(c[0]), padded(c[1])) == (padded(camvid_size[0]), padded(camvid_size[1]))]
    fixed = paths[same_size[0]] if same_size else fixed_shape_paths(model, (*camvid_size, 1), *fixed_arguments)
    fits = {**dynamic, **{n: p for n, p in fixed.items() if isinstance(p, FixedShapePath)}}
    log(f"CamVid val accuracy on {len(pairs)} images")
    accuracy = camvid_accuracy(fits, pairs, num_classes, log) if fits else {}
    answer, costs = rest_answer(root.parent, num_classes, log)
    machine.finish()
    payload.update(machine=machine.to_dict(), accuracy=accuracy, notes=notes, model=description,
                   val_images=len(pairs), answer=costs)
    _common.write_json(json_path, payload)
    markdown = results_markdown(machine, results, macs, limits, accuracy, notes, description, len(pairs), answer)
    _common.publish(section, markdown, not args.no_doc, log)
    del paths
    gc.collect()


if __name__ == "__main__":
    main()
