#!/usr/bin/env python
"""Segments images with an SPGNet model served by TF Serving, through its JSON REST API.

    python examples/serving_client.py --server http://localhost:8501 --model spgnet street.png
    python examples/serving_client.py --server http://localhost:8501 --model spgnet a.jpg b.png --out maps/

Sends the encoded files as-is (`{"instances": [{"b64": ...}, ...]}` to the
`serving_default` signature: JPEG or PNG bytes; decoding, padding and the model's own
normalisation happen in the served graph), and prints each image's size and class histogram. With
`--out`, writes each class map as an 8-bit PNG (needs Pillow; -1 padding is cropped off). With
`--metadata <version>/assets.extra/spgnet_export.json` the histogram names the classes (the model's
own class names, which the export records).

Only the Python standard library is needed to send requests (Pillow only for `--out`).
See examples/serve_with_tf_serving.md.
"""

import argparse
import base64
import collections
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path


class ServingError(RuntimeError):
    """TF Serving answered with an error (e.g. InvalidArgument for a bad image)."""


def build_request(images, signature="serving_default"):
    """The REST body for a list of encoded images (bytes), in TF Serving's row format."""
    return {
        "signature_name": signature,
        "instances": [{"b64": base64.b64encode(data).decode("ascii")} for data in images],
    }


def predict_url(server, model, version=None):
    url = f"{server.rstrip('/')}/v1/models/{model}"
    if version is not None:
        url += f"/versions/{version}"
    return url + ":predict"


def predict(server, model, images, version=None, signature="serving_default", timeout=120):
    """Sends `images` (a list of JPEG/PNG bytes) and returns one dict per image with
    `classes` (a list of rows, cropped to the image), `image_size` (height, width) and,
    when the model was exported with probabilities, `probabilities`."""
    body = json.dumps(build_request(images, signature)).encode("utf-8")
    request = urllib.request.Request(
        predict_url(server, model, version), data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.load(response)
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", errors="replace")
        try:
            detail = json.loads(detail).get("error", detail)
        except ValueError:
            pass
        raise ServingError(f"HTTP {error.code}: {detail}") from None
    return parse_response(payload)


def parse_response(payload):
    """Row-format predictions -> per-image dicts, class maps cropped to `image_sizes`."""
    if "error" in payload:
        raise ServingError(payload["error"])
    results = []
    for prediction in payload["predictions"]:
        height, width = prediction["image_sizes"]
        result = {
            "image_size": (height, width),
            "classes": [row[:width] for row in prediction["classes"][:height]],
        }
        if "probabilities" in prediction:
            result["probabilities"] = [row[:width] for row in prediction["probabilities"][:height]]
        results.append(result)
    return results


def class_histogram(classes):
    return collections.Counter(value for row in classes for value in row)


def save_class_map(classes, path):
    from PIL import Image

    height, width = len(classes), len(classes[0]) if classes else 0
    image = Image.new("L", (width, height))
    image.putdata([value for row in classes for value in row])
    image.save(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path, help="JPEG or PNG files")
    parser.add_argument("--server", default="http://localhost:8501", help="TF Serving REST address")
    parser.add_argument("--model", default="spgnet", help="model name (TF Serving's --model_name)")
    parser.add_argument("--version", type=int, default=None, help="model version (default: the latest)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the class maps (PNG)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--metadata", type=Path, default=None,
                        help="the export's assets.extra/spgnet_export.json: name the classes with its class_names")
    args = parser.parse_args(argv)
    names = json.loads(args.metadata.read_text())["class_names"] if args.metadata is not None else None

    images = [path.read_bytes() for path in args.images]
    try:
        results = predict(args.server, args.model, images, version=args.version, timeout=args.timeout)
    except (ServingError, urllib.error.URLError) as error:
        print(f"serving_client: error: {error}", file=sys.stderr)
        return 1
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    for path, result in zip(args.images, results):
        height, width = result["image_size"]
        counts = class_histogram(result["classes"])
        shares = ", ".join(f"{names[c] if names and 0 <= c < len(names) else c}: {100 * n / (height * width):.1f}%"
                           for c, n in sorted(counts.items()))
        print(f"{path}: {height}x{width}, classes {shares}")
        if args.out is not None:
            save_class_map(result["classes"], args.out / f"{path.stem}_classes.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
