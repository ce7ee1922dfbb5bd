"""The machine's limit for `benchmarks/serving_speed.py`: effective clock and peak
multiply-accumulates per second of each precision's instructions, measured in the run.

The effective clock is measured with a latency-bound chain of dependent vector FMAs (4
cycles each, documented for Intel Skylake-SP..Sapphire Rapids and AMD Zen 2..5), and the
peak MACs per cycle of one core with throughput-bound loops of independent AVX-512 (or
AVX2) `FMA` (float32), `VDPBF16PS` (bfloat16, AVX512-BF16), `VPDPBUSD` (int8,
AVX512-VNNI) and, where the CPU has AMX, `TDPBF16PS` / `TDPBUSD` tile instructions, run on
every core the run uses at once (a small C program built with `gcc -O2 -march=native`).
"""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

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

/* AMX (Sapphire Rapids and later): 4 independent 16x16 accumulator tiles (tmm0-3) and four
   16-row x 64-byte source tiles (tmm4-7). One TDPBF16PS is 16 x 16 x 32 bfloat16 MACs, one
   TDPBUSD 16 x 16 x 64 int8 MACs. Linux hands out the tile state only on request
   (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA). */
#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AMX_INT8__)
#include <sys/syscall.h>
#include <unistd.h>
typedef struct { unsigned char palette_id, start_row, reserved[14]; unsigned short colsb[16]; unsigned char rows[16]; }
    tile_config;
static unsigned char tile_data[16 * 64] __attribute__((aligned(64)));
static int amx_ready(void) {
  static tile_config config;  /* static: gcc 12 drops the stores to a local one before LDTILECFG */
  if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */)) return 0;
  config.palette_id = 1;
  for (int t = 0; t < 8; t++) { config.colsb[t] = 64; config.rows[t] = 16; }
  _tile_loadconfig(&config);
  _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
  _tile_loadd(4, tile_data, 64); _tile_loadd(5, tile_data, 64); _tile_loadd(6, tile_data, 64); _tile_loadd(7, tile_data, 64);
  return 1;
}
#define AMX_LOOP(OP, macs) \
  if (!amx_ready()) return 0; \
  double start = now(); \
  for (long i = 0; i < n; i++) { OP(0, 4, 6); OP(1, 4, 7); OP(2, 5, 6); OP(3, 5, 7); } \
  double seconds = now() - start; \
  _tile_stored(0, tile_data, 64); _tile_release(); \
  return 4.0 * macs * n / seconds;
static double amx_bf16(long n) { AMX_LOOP(_tile_dpbf16ps, 16 * 16 * 32) }
static double amx_int8(long n) { AMX_LOOP(_tile_dpbusd, 16 * 16 * 64) }
#else
static double amx_bf16(long n) { (void)n; return 0; }
static double amx_int8(long n) { (void)n; return 0; }
#endif

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 20000000;
  printf("{\"chained_fmas_per_s\": %.6g, \"float32 FMA\": %.6g, \"bfloat16 VDPBF16PS\": %.6g, "
         "\"int8 VPDPBUSD\": %.6g, \"bfloat16 AMX TDPBF16PS\": %.6g, \"int8 AMX TDPBUSD\": %.6g}\n",
         fma_chain(n / 8), fp32(4 * n / ACC), bf16(4 * n / ACC), int8(4 * n / ACC), amx_bf16(n / 16), amx_int8(n / 16));
  return 0;
}
"""


def run_cores():
    """The cores this process may run on (its affinity), the count every path is given."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_limits(iterations, cores, log, repeats=3, documented_fp32=None, fma_latency=4):
    """Effective clock and peak MACs/s per instruction and precision from the C microbenchmark,
    or None without gcc.

    One copy runs per core at the same time (the clock under all-core load, and SMT
    siblings sharing FMA units show up as a lower per-copy rate). A precision's limit is its
    fastest instruction on this CPU (AMX where there is AMX: oneDNN's bfloat16 and int8
    kernels use it).
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
    instructions = {}
    for name in (key for key in runs[0][0] if key != "chained_fmas_per_s"):
        best = max(float(sum(r[name] for r in run)) for run in runs)
        if best > 0:
            instructions[name] = dict(macs_per_s=best, macs_per_cycle_per_core=best / cores / clock)
    limits = {}
    for name, value in instructions.items():
        precision = name.split()[0]
        if value["macs_per_s"] > limits.get(precision, {}).get("macs_per_s", 0):
            limits[precision] = dict(value, instruction=name)
    if documented_fp32 and "float32" in limits:
        # The clock under AVX-512 load: measured FMA rate / the documented FMA MACs per cycle.
        limits["float32"]["avx_clock_hz"] = limits["float32"]["macs_per_s"] / cores / documented_fp32
    log(f"effective clock {clock / 1e9:.2f} GHz; peak MAC/s (all {cores} cores): "
        + ", ".join(f"{name} {v['macs_per_s'] / 1e9:.0f} G ({v['macs_per_cycle_per_core']:.1f}/cycle/core)"
                    for name, v in instructions.items()))
    return dict(clock_hz=clock, cores=cores, precisions=limits, instructions=instructions, runs=runs,
                fma_latency=fma_latency, documented_fp32_macs_per_cycle=documented_fp32)
