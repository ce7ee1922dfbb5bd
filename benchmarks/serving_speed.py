"""Serving speed and accuracy of the export paths, timed side by side in one run.

Paths (each computes the class map of a float32 RGB 0-255 batch):

- `keras_f32`: the Keras model as trained (BatchNorm layers), in the served graph's
  padding / crop / argmax (`spgnet_keras.export.Segmenter` in a `tf.function`).
- `saved_model_f32`: the SavedModel of `spgnet export` (BatchNorm folded), signature
  `predict_images_float`.
- `saved_model_bf16`: the same with `--precision bfloat16`.
- `tflite_int8`: `spgnet export --format tflite --quantize int8` at the cell's padded
  size (calibrated on CamVid train images), LiteRT with XNNPACK, `--threads` threads;
  the input is padded with the mean colour outside, the logits cropped and argmaxed in numpy.
- `onnx_f32`: the folded float32 ONNX file in ONNX Runtime (CPU provider), same handling.

Each cell (`HxW:batch`; default 512x1024 batch 1 and a CamVid-size batch, 180x240 batch 8:
the shared CamVid copy is at half resolution)
gets warm-up calls, then interleaved rounds (one call of each path per round; medians).
MACs from `spgnet_keras.profiler.count_macs` (the padded input); achieved MAC/s = MACs x
batch / median latency, compared with the machine's limit for the path's precision:

- The effective clock is measured with a latency-bound chain of dependent vector FMAs (4
  cycles each, documented for Intel Skylake-SP..Sapphire Rapids and AMD Zen 2..5:
  `--fma-latency`), and the peak MACs per cycle of one core with
  throughput-bound loops of independent AVX-512 (or AVX2) `FMA` (float32),
  `VDPBF16PS` (bfloat16, AVX512-BF16) and `VPDPBUSD` (int8, AVX512-VNNI) instructions,
  run on every core at once. Limit = cores x clock x MACs/cycle of that instruction (a
  small C program built with `gcc -O2 -march=native`).

Then the mIoU of every path on CamVid val (each image at its own size; the fixed-shape
paths use files of the image's padded size, the image padded with the mean colour as the
model pads it), and the fraction of val pixels whose
class equals `keras_f32`'s. The load average is recorded at the start, after every round
and at the end.

Examples::

    python benchmarks/serving_speed.py --model runs/camvid_benchmark/model.keras
    python benchmarks/serving_speed.py --model runs/camvid_benchmark/model.keras --cells 512x1024:1,360x480:8
    python benchmarks/serving_speed.py --quick --no-doc     # tiny random model, tiny sizes: checks the plumbing
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.setup_tensorflow_logging()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

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

PATHS = ("keras_f32", "saved_model_f32", "saved_model_bf16", "tflite_int8", "onnx_f32")
PRECISION = {"keras_f32": "float32", "saved_model_f32": "float32", "saved_model_bf16": "bfloat16",
             "tflite_int8": "int8", "onnx_f32": "float32"}
LABELS = {
    "keras_f32": "Keras float32 (BatchNorm layers)",
    "saved_model_f32": "SavedModel float32, BatchNorm folded",
    "saved_model_bf16": "SavedModel bfloat16, BatchNorm folded",
    "tflite_int8": "TFLite int8 (XNNPACK)",
    "onnx_f32": "ONNX Runtime float32, folded",
}
GOALS = {"saved_model_f32": 1.10, "saved_model_bf16": 1.6, "tflite_int8": 2.5}


# ----------------------------------------------------------------------------- machine limit

MICROBENCHMARK_C = r"""
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

/* A chain of dependent FMAs (8 per iteration): each waits for the one before, so the loop
   takes FMA_LATENCY cycles per FMA (4 on Intel Skylake-SP to Sapphire Rapids and AMD Zen 2 to
   Zen 5). Run on 512-bit registers where there are some, at the clock the core holds under
   AVX-512 load. (A chain of integer adds is no clock: recent cores fold add-immediate chains
   at rename.) */
#if defined(__AVX512F__)
typedef __m512 vec;
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
static float first(vec v) { return _mm512_reduce_add_ps(v); }
#else
typedef __m256 vec;
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
static float first(vec v) { float out[8]; _mm256_storeu_ps(out, v); return out[0]; }
#endif
static double fma_chain(long n) {
  vec x = SET1(1.0f), a = SET1(0.9999999f), b = SET1(1e-7f);
  double start = now();
  for (long i = 0; i < n; i++) {
    x = FMA(x, a, b); x = FMA(x, a, b); x = FMA(x, a, b); x = FMA(x, a, b);
    x = FMA(x, a, b); x = FMA(x, a, b); x = FMA(x, a, b); x = FMA(x, a, b);
  }
  double seconds = now() - start;
  if (first(x) == 42.f) printf("#");
  return 8.0 * n / seconds;  /* dependent FMAs per second = clock / FMA latency */
}

/* 24 independent accumulators in registers (acc0..acc23): enough to keep two pipes busy
   at up to 12 cycles latency, so the loops are throughput-bound. */
#define ACC 24
#define REP(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
               X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
/* The body of every throughput kernel, after its DECLARE/STEP/SUM of one accumulator k:
   products = multiply-accumulates per instruction (lanes x products per lane). */
#define TIMED_LOOP(sum_type, products) \
  REP(DECLARE) \
  double start = now(); \
  for (long i = 0; i < n; i++) { REP(STEP) } \
  double seconds = now() - start; sum_type s = 0; REP(SUM) \
  if (s == 42) printf("#"); \
  return products * ACC * n / seconds;

#if defined(__AVX512F__)
static double fp32(long n) {
  __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
#define DECLARE(k) __m512 acc##k = _mm512_set1_ps((float)k);
#define STEP(k) acc##k = _mm512_fmadd_ps(a, acc##k, b);
#define SUM(k) s += _mm512_reduce_add_ps(acc##k);
  TIMED_LOOP(float, 16.0)
#undef DECLARE
#undef STEP
#undef SUM
}
#elif defined(__AVX2__) && defined(__FMA__)
static double fp32(long n) {
  __m256 a = _mm256_set1_ps(1.0000001f), b = _mm256_set1_ps(0.9999999f);
  float out[8];
#define DECLARE(k) __m256 acc##k = _mm256_set1_ps((float)k);
#define STEP(k) acc##k = _mm256_fmadd_ps(a, acc##k, b);
#define SUM(k) _mm256_storeu_ps(out, acc##k); s += out[0];
  TIMED_LOOP(float, 8.0)
#undef DECLARE
#undef STEP
#undef SUM
}
#else
static double fp32(long n) { (void)n; return 0; }
#endif

#if defined(__AVX512BF16__)
static double bf16(long n) {
  __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3f80);
#define DECLARE(k) __m512 acc##k = _mm512_set1_ps((float)k);
#define STEP(k) acc##k = _mm512_dpbf16_ps(acc##k, a, b);
#define SUM(k) s += _mm512_reduce_add_ps(acc##k);
  TIMED_LOOP(float, 32.0)  /* 16 float32 lanes x 2 bfloat16 products */
#undef DECLARE
#undef STEP
#undef SUM
}
#else
static double bf16(long n) { (void)n; return 0; }
#endif

#if defined(__AVX512VNNI__)
static double int8(long n) {
  __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(1);
#define DECLARE(k) __m512i acc##k = _mm512_set1_epi32(k);
#define STEP(k) acc##k = _mm512_dpbusd_epi32(acc##k, a, b);
#define SUM(k) s += _mm512_reduce_add_epi32(acc##k);
  TIMED_LOOP(long, 64.0)  /* 16 int32 lanes x 4 int8 products */
#undef DECLARE
#undef STEP
#undef SUM
}
#else
static double int8(long n) { (void)n; return 0; }
#endif

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 20000000;
  printf("{\"chained_fmas_per_s\": %.6g, \"float32\": %.6g, \"bfloat16\": %.6g, \"int8\": %.6g}\n",
         fma_chain(n / 8), fp32(4 * n / ACC), bf16(4 * n / ACC), int8(4 * n / ACC));
  return 0;
}
"""


def machine_limits(iterations, cores, log, repeats=3, documented_fp32=None, fma_latency=4):
    """Effective clock and peak MACs/s per precision from the C microbenchmark, or None.

    One copy runs per core at the same time (the clock under all-core load, and SMT
    siblings sharing FMA units show up as a lower per-copy rate).
    """
    gcc = shutil.which("gcc")
    if gcc is None:
        log("gcc not found: no clock / peak MAC measurement")
        return None
    with tempfile.TemporaryDirectory() as folder:
        source, binary = Path(folder) / "fma.c", Path(folder) / "fma"
        source.write_text(MICROBENCHMARK_C)
        build = subprocess.run([gcc, "-O2", "-march=native", "-o", str(binary), str(source)], capture_output=True,
                               text=True)
        if build.returncode != 0:
            log(f"microbenchmark did not compile: {build.stderr[-500:]}")
            return None
        runs = []
        for _ in range(repeats):  # the best of a few runs: the one least disturbed by other jobs
            processes = [subprocess.Popen([str(binary), str(iterations)], stdout=subprocess.PIPE, text=True)
                         for _ in range(cores)]
            runs.append([json.loads(p.communicate()[0]) for p in processes])
    clock = fma_latency * max(float(np.median([r["chained_fmas_per_s"] for r in run])) for run in runs)
    limits = {}
    for precision in ("float32", "bfloat16", "int8"):
        best = max(float(sum(r[precision] for r in run)) for run in runs)
        if best > 0:
            limits[precision] = dict(macs_per_s=best, macs_per_cycle_per_core=best / cores / clock)
    if documented_fp32 and "float32" in limits:
        # The clock under AVX-512 load: measured FMA rate / the documented FMA MACs per cycle.
        limits["float32"]["avx_clock_hz"] = limits["float32"]["macs_per_s"] / cores / documented_fp32
    log(f"effective clock {clock / 1e9:.2f} GHz; peak MAC/s (all {cores} cores): "
        + ", ".join(f"{p} {v['macs_per_s'] / 1e9:.0f} G ({v['macs_per_cycle_per_core']:.1f}/cycle/core)"
                    for p, v in limits.items()))
    return dict(clock_hz=clock, cores=cores, precisions=limits, runs=runs, fma_latency=fma_latency,
                documented_fp32_macs_per_cycle=documented_fp32)


# ----------------------------------------------------------------------------- paths

def padded(size):
    return -(-size // OUTPUT_STRIDE) * OUTPUT_STRIDE


class DynamicPath:
    """A path taking any height/width: a tf.function or a SavedModel signature returning classes."""

    def __init__(self, function):
        self.function = function

    def classes(self, images):
        return self.function(tf.constant(images))["classes"].numpy()


class FixedShapePath:
    """A fixed-shape .tflite / .onnx runner: pads the batch (mean colour; missing images by
    repetition) to its input shape, crops the logits and takes the argmax."""

    def __init__(self, runner):
        self.runner = runner
        self.batch, self.height, self.width = (int(v) for v in runner.input_shape[:3])

    def classes(self, images):
        count, height, width = images.shape[:3]
        if count > self.batch or height > self.height or width > self.width:
            raise ValueError(f"a {images.shape} batch does not fit the file's input {self.runner.input_shape}")
        batch = preprocessing.pad_bottom_right(tf.constant(images), self.height, self.width).numpy()
        if count < self.batch:
            batch = np.concatenate([batch, np.repeat(batch[:1], self.batch - count, axis=0)])
        logits = self.runner(batch)[:count, :height, :width]
        return np.argmax(logits, axis=-1)


def dynamic_paths(model, names, work, log):
    """The paths that take any image size: {name: DynamicPath}."""
    segmenter = Segmenter(model)
    paths = {}
    if "keras_f32" in names:
        # autograph=False, as the SavedModel endpoints are traced (the Segmenter is written for it).
        paths["keras_f32"] = DynamicPath(tf.function(segmenter.__call__, jit_compile=False, autograph=False))
    for name, precision in (("saved_model_f32", "float32"), ("saved_model_bf16", "bfloat16")):
        if name in names:
            start = time.perf_counter()
            folder = export_saved_model(model, work / name / "1", precision=precision, overwrite=True)
            paths[name] = DynamicPath(tf.saved_model.load(str(folder)).signatures["predict_images_float"])
            log(f"exported {name} ({time.perf_counter() - start:.0f} s)")
    return paths


def fixed_shape_paths(model, cell, names, work, calibration_folder, calibration_count, threads, log, notes):
    """The fixed-shape files for one (height, width, batch) cell: {name: FixedShapePath}."""
    height, width, batch = cell
    shape = (batch, padded(height), padded(width), 3)
    paths = {}
    if "tflite_int8" in names:
        start = time.perf_counter()
        calibration = calibration_images(calibration_folder, shape[1], shape[2], limit=calibration_count)
        path = export_int8_tflite(model, work / f"int8_{shape[1]}x{shape[2]}_b{batch}.tflite", shape, calibration)
        runner = open_runner(path, num_threads=threads)
        if runner.delegate != "XNNPACK":
            notes.append(f"tflite_int8 at {shape}: {runner.delegate}")
        paths["tflite_int8"] = FixedShapePath(runner)
        log(f"exported tflite_int8 {shape} on {len(calibration)} calibration images, delegate "
            f"{runner.delegate} ({time.perf_counter() - start:.0f} s)")
    if "onnx_f32" in names:
        start = time.perf_counter()
        path = export_onnx(model, work / f"f32_{shape[1]}x{shape[2]}_b{batch}.onnx", shape)
        paths["onnx_f32"] = FixedShapePath(open_runner(path, num_threads=threads))
        log(f"exported onnx_f32 {shape} ({time.perf_counter() - start:.0f} s)")
    return paths


# ----------------------------------------------------------------------------- timing and accuracy

def timed_call(path, images):
    start = time.perf_counter()
    path.classes(images)
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

def results_markdown(machine, cells, macs, limits, accuracy, notes, model_description, val_count):
    lines = ["## Serving speed: folded BatchNorm, bfloat16, int8", "", machine.markdown(), ""]
    lines += [f"Model: {model_description}. Latency = median of interleaved rounds (one call of each path per "
              "round); images/s = batch / latency. Achieved GMAC/s = MACs of the padded input x batch / latency; "
              "\"of limit\" divides by the machine's limit for the path's precision (below).", ""]
    if limits:
        lines.append(f"Machine limit: effective clock **{limits['clock_hz'] / 1e9:.2f} GHz** (a chain of dependent "
                     f"vector FMAs x their documented {limits['fma_latency']}-cycle latency, "
                     f"all {limits['cores']} cores busy); peak per precision (throughput-bound FMA / VDPBF16PS / "
                     "VPDPBUSD loops on every core): "
                     + ", ".join(f"{p} **{v['macs_per_s'] / 1e9:.0f} GMAC/s** ({v['macs_per_cycle_per_core']:.1f} "
                                 "MACs/cycle/core at that clock)" for p, v in limits["precisions"].items()) + ".")
        avx_clock = limits["precisions"].get("float32", {}).get("avx_clock_hz")
        if avx_clock:
            lines.append(f"With the documented {limits['documented_fp32_macs_per_cycle']:g} float32 MACs/cycle/core, "
                         f"the clock under AVX-512 FMA load is {avx_clock / 1e9:.2f} GHz.")
        lines.append("")
    for (height, width, batch), times in cells.items():
        lines += [f"### {height}x{width}, batch {batch}", "",
                  "| Path | Latency (s) | n | min-max (s) | Images/s | vs Keras | GMAC/s | of limit |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        median = {name: _common.median(t) for name, t in times.items()}
        for name, values in times.items():
            rate = macs[(height, width)] * batch / median[name]
            limit = (limits or {}).get("precisions", {}).get(PRECISION[name])
            speedup = median["keras_f32"] / median[name] if "keras_f32" in median else float("nan")
            goal = f" (goal {GOALS[name]:.2f}x)" if name in GOALS else ""
            lines.append(f"| {LABELS[name]} | {median[name]:.3f} | {len(values)} | {min(values):.3f}-{max(values):.3f} "
                         f"| {batch / median[name]:.2f} | {speedup:.2f}x{goal} | {rate / 1e9:.1f} | "
                         + (f"{100 * rate / limit['macs_per_s']:.0f} %" if limit else "n/a") + " |")
        lines.append("")
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
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


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
    parser.add_argument("--paths", default=",".join(PATHS), help="subset of " + ",".join(PATHS))
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds per cell (default 9)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up calls per path and cell (default 2)")
    parser.add_argument("--budget", type=float, default=900, help="seconds of timed rounds per cell (default 900)")
    parser.add_argument("--calibration-images", type=int, default=200, help="CamVid train images to calibrate int8")
    parser.add_argument("--val-images", type=int, default=0, help="CamVid val images to score (default 0 = all)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="TFLite / ONNX Runtime threads")
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
    parser.add_argument("--json", default=None, help="results JSON (default benchmarks/results/<section>.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.cells, args.repeats, args.warmup = "64x96:2,180x240:1", 2, 1
        args.calibration_images, args.val_images = 4, args.val_images or 3
        args.microbenchmark_iterations = 20_000_000
    cells = parse_cells(args.cells)
    names = [n for n in args.paths.split(",") if n]
    unknown = sorted(set(names) - set(PATHS))
    if unknown:
        parser.error(f"unknown path(s) {unknown}; choose from {PATHS}")
    section = args.section or ("serving-quick" if args.quick else "serving-speed")
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
    limits = machine_limits(args.microbenchmark_iterations, os.cpu_count(), log,
                            documented_fp32=args.documented_fp32_macs_per_cycle, fma_latency=args.fma_latency)
    model, description = load_or_build_model(args, log)
    num_classes = int(model.num_classes)
    macs = {(h, w): count_macs(model, h, w) for h, w, _ in cells}
    notes = []
    fixed_arguments = (names, work, root / "train" / "images", args.calibration_images, args.threads, log, notes)
    dynamic = dynamic_paths(model, names, work, log)
    paths = {cell: {**dynamic, **fixed_shape_paths(model, cell, *fixed_arguments)} for cell in cells}
    rng = np.random.default_rng(0)
    results, payload = {}, {}
    for cell in cells:
        height, width, batch = cell
        log(f"cell {height}x{width} batch {batch}")
        images = rng.uniform(0, 255, (batch, height, width, 3)).astype("float32")
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
    machine.finish()
    payload.update(machine=machine.to_dict(), accuracy=accuracy, notes=notes, model=description,
                   val_images=len(pairs))
    _common.write_json(json_path, payload)
    markdown = results_markdown(machine, results, macs, limits, accuracy, notes, description, len(pairs))
    _common.publish(section, markdown, not args.no_doc, log)
    del paths
    gc.collect()


if __name__ == "__main__":
    main()
