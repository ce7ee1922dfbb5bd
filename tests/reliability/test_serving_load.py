"""One process serves 200 requests from 8 threads: valid answers equal the single-threaded
ones, every invalid request gets its error, and memory does not grow after a warm-up."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from spgnet_keras import SPGNet
from spgnet_keras.export import export_saved_model


def encoded(height, width, fmt, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def requests():
    payloads = []
    for i in range(20):
        if i % 5 == 4:
            payloads.append([b"not an image", b"\x89PNG\r\n\x1a\n broken", b"", b"GIF89a", b"\xff\xd8\xff"][i // 5])
        else:
            payloads.append(encoded(32 + 7 * i, 48 + 5 * i, "PNG" if i % 2 else "JPEG", seed=i))
    return np.array(payloads, dtype=object).astype(bytes)


def test_concurrent_requests_are_answered_correctly_without_memory_growth(tmp_path):
    model = SPGNet(4, backbones=("resnet18",), decoder_channels=8)
    export_dir = export_saved_model(model, tmp_path / "spgnet" / "1")
    np.savez(tmp_path / "requests.npz", requests=requests())
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("serve_load.py")), str(export_dir), str(tmp_path / "requests.npz")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(figures)
    assert figures["requests"] == 200 and figures["mismatches"] == 0
    assert figures["errors"] == figures["expected_errors"] == 40
    assert figures["rss_after_mb"] - figures["rss_before_mb"] < 64, figures
    assert not figures["keras_imported"]
