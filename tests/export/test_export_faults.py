"""`spgnet export` on a disk that fills up (a file-size limit, which stops root too): one line
naming the folder and the cause, never a TensorFlow traceback, and the previous version intact."""

import resource
import signal
import subprocess
import sys

import keras
import tensorflow as tf

from spgnet_keras import SPGNet

LIMIT_BYTES = 256 * 1024  # far below a SavedModel of the model below


def limited_disk():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # kept across exec: writes fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))


def export(checkpoint, out, *extra, full_disk=False):
    command = [sys.executable, "-m", "spgnet_keras.cli", "export", str(checkpoint), "--out", str(out), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          preexec_fn=limited_disk if full_disk else None)


def errors(result):
    return [line for line in result.stderr.splitlines() if line.startswith("spgnet export: error:")]


def test_export_on_a_full_disk_is_one_line_and_keeps_the_previous_version(tmp_path):
    keras.utils.set_random_seed(0)
    checkpoint = tmp_path / "model.keras"
    SPGNet(3, backbones=("resnet18",), decoder_channels=8).save(checkpoint)
    base = tmp_path / "serving" / "spgnet"
    assert export(checkpoint, base / "1").returncode == 0
    first = sorted(path.relative_to(base) for path in (base / "1").rglob("*"))

    new_version = export(checkpoint, base / "2", full_disk=True)
    assert new_version.returncode == 2, new_version.stderr[-3000:]
    (message,) = errors(new_version)
    assert message == f"spgnet export: error: Could not write the export {base / '2'}: File too large; nothing was written."
    assert "Traceback" not in new_version.stderr
    assert sorted(path.name for path in base.iterdir()) == ["1"]  # no version 2, no hidden temporary

    replacing = export(checkpoint, base / "1", "--overwrite", full_disk=True)
    assert replacing.returncode == 2, replacing.stderr[-3000:]
    (message,) = errors(replacing)
    assert message.endswith(f"File too large; the previous version in {base / '1'} is intact.")
    assert sorted(path.name for path in base.iterdir()) == ["1"]
    assert sorted(path.relative_to(base) for path in (base / "1").rglob("*")) == first
    served = tf.saved_model.load(str(base / "1"))
    assert "serving_default" in served.signatures


def test_openvino_export_on_a_full_disk_is_one_line_and_keeps_the_previous_files(tmp_path):
    keras.utils.set_random_seed(0)
    checkpoint = tmp_path / "model.keras"
    SPGNet(3, backbones=("resnet18",), decoder_channels=8).save(checkpoint)
    out = tmp_path / "ir" / "spgnet.xml"
    options = ["--format", "openvino", "--input-size", "64x96", "--skip-parity-check"]
    assert export(checkpoint, out, *options).returncode == 0
    before = {path.name: path.read_bytes() for path in out.parent.iterdir()}
    assert sorted(before) == ["spgnet.bin", "spgnet.xml"]

    replacing = export(checkpoint, out, *options, "--overwrite", full_disk=True)
    assert replacing.returncode == 2, replacing.stderr[-3000:]
    assert errors(replacing) == [f"spgnet export: error: {out}: File too large"]
    assert "Traceback" not in replacing.stderr
    assert {path.name: path.read_bytes() for path in out.parent.iterdir()} == before  # no temporary left
