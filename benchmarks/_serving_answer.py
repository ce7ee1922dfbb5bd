"""The size and cost of a served class map as a TF Serving REST (JSON) answer, both ways.

- `int32 list`: the `classes` output of `serving_default`, which the REST API writes as
  nested lists of numbers (`{"predictions": [{"classes": [[...], ...], "image_sizes": ...}]}`).
- `base64 PNG`: the `classes_png_bytes` output of `predict_classes_png`, which it writes as
  `{"b64": ...}` (an output name ending in `_bytes`).

Encode = what the server does after the network (the PNG encode in the graph, then JSON);
decode = what a client does to get a numpy class map back. Both JSON sides run Python's
`json` (TF Serving writes JSON in C++, so its encode is faster than this; the ratio of sizes
does not depend on it). Used by `benchmarks/serving_speed.py` (`--answer-only` runs it alone).
"""

import base64
import io
import json
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from spgnet_keras.export.serving import class_map_png_dtype, encode_class_maps


def cityscapes_class_map(label_path, size=(1024, 2048)):
    """A realistic answer of `size`: a Cityscapes train-id label (the shared sample is at
    128x256) resized to `size` (nearest), the ignore value (255) replaced by class 0, as a
    prediction has no ignore pixels."""
    label = Image.open(label_path).resize(size[::-1], Image.NEAREST)
    label = np.array(label).astype(np.int32)
    label[label == 255] = 0
    return label


def noise_class_map(num_classes, size=(1024, 2048), seed=0):
    """The worst case for PNG: independent uniform class ids."""
    return np.random.default_rng(seed).integers(0, num_classes, size).astype(np.int32)


def list_answer(classes):
    return json.dumps({"predictions": [{"classes": classes.tolist(), "image_sizes": list(classes.shape)}]})


def read_list_answer(text):
    return np.array(json.loads(text)["predictions"][0]["classes"], np.int32)


def png_answer(classes, num_classes):
    sizes = tf.constant([classes.shape], tf.int32)
    png = encode_class_maps(tf.constant(classes[None]), sizes, class_map_png_dtype(num_classes)).numpy()[0]
    prediction = {"classes_png_bytes": {"b64": base64.b64encode(png).decode("ascii")}, "image_sizes": list(classes.shape)}
    return json.dumps({"predictions": [prediction]})


def read_png_answer(text):
    prediction = json.loads(text)["predictions"][0]
    return np.array(Image.open(io.BytesIO(base64.b64decode(prediction["classes_png_bytes"]["b64"]))))


def _best_time(function, argument, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(argument)
        times.append(time.perf_counter() - start)
    return result, min(times)


def answer_costs(classes, num_classes, repeats=5):
    """{way: {bytes, encode_s, decode_s}} for one class map; checks both decode to `classes`."""
    results = {}
    for way, encode, decode in (("int32 list", list_answer, read_list_answer),
                                ("base64 PNG", lambda c: png_answer(c, num_classes), read_png_answer)):
        text, encode_s = _best_time(encode, classes, repeats)
        decoded, decode_s = _best_time(decode, text, repeats)
        if not np.array_equal(decoded, classes):
            raise AssertionError(f"the {way} answer does not decode to the class map")
        results[way] = dict(bytes=len(text.encode("utf-8")), encode_s=encode_s, decode_s=decode_s)
    return results


def answer_markdown(costs, description):
    lines = [f"### REST answer of one class map ({description})", "",
             "| answer | JSON bytes | encode (s) | decode (s) |", "|---|---:|---:|---:|"]
    for way, cost in costs.items():
        lines.append(f"| {way} | {cost['bytes']:,} | {cost['encode_s']:.3f} | {cost['decode_s']:.3f} |")
    return lines + [""]
