"""Loads a SavedModel with TensorFlow only and serves requests from 8 threads.

Usage: python serve_load.py EXPORT_DIR REQUESTS_NPZ -> prints one JSON line.
Each request is one encoded image (valid PNG/JPEG of varied sizes, or invalid bytes).
"""

import json
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf


def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(export_dir, requests_path):
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    requests = list(np.load(requests_path, allow_pickle=False)["requests"])

    def call(payload):
        try:
            out = serve(images=tf.constant([payload]))
            return ("ok", out["classes"].numpy()[0].tobytes())
        except tf.errors.InvalidArgumentError as error:
            return ("error", error.message.splitlines()[0][:200])

    single = [call(p) for p in requests[:20]]  # warm-up and single-threaded reference
    reference = {i: r for i, r in enumerate(single)}
    before = rss_mb()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, [requests[i % 20] for i in range(200)]))
    after = rss_mb()
    mismatches = sum(results[i] != reference[i % 20] for i in range(200))
    print(json.dumps({
        "requests": len(results),
        "errors": sum(r[0] == "error" for r in results),
        "expected_errors": sum(reference[i % 20][0] == "error" for i in range(200)),
        "mismatches": mismatches,
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "keras_imported": "spgnet_keras" in sys.modules,
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
