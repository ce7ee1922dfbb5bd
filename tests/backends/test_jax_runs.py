"""`spgnet train` on KERAS_BACKEND=jax (the run folder a TensorFlow run writes), `spgnet export`
of its checkpoint (the TF Serving SavedModel, served as JAX predicts), and a 2-process run
under `keras.distribution.DataParallel` on 127.0.0.1 (the same weights on both processes).

The JAX runs are child interpreters (the backend is fixed per process), started together
when the first test of this module asks for them, so they share the cores.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from spgnet_keras.data.synthetic import SYNTHETIC_CLASSES
from spgnet_keras.distribution import make_strategy, patch_fit_for_multi_worker
from spgnet_keras.export import SIGNATURES
from spgnet_keras.export.from_backend import TensorFlowExportError, package_error, tensorflow_env
from spgnet_keras.export.saved_model import ExportWriteError
from tests.training.conftest import MultiWorkerRun, free_ports, script_env, tiny_synthetic_sections, write_config

SCRIPTS = Path(__file__).resolve().parent / "scripts"
TINY_MODEL = {"preset": "spgnet_r18x1_128", "arguments": {"decoder_channels": 8}}
# What `spgnet train` leaves in its run folder on TensorFlow (tests/training/test_train_command.py).
RUN_FILES = {"checkpoints/latest.keras", "checkpoints/best.keras", "checkpoints/best.json", "config.json",
             "data.json", "finished.json", "history.csv", "report/index.html", "report/report.json"}


def final_json(stdout):
    """The `{"final": ..., "checkpoint": ...}` summary `spgnet train` prints (other lines may follow)."""
    start = stdout.rfind('{\n  "final"')
    assert start >= 0, stdout[-2000:]
    return json.JSONDecoder().raw_decode(stdout[start:])[0]


def jax_env(**extra):
    return script_env(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", **extra)


class Child:
    """A child interpreter whose output goes to files in `workdir`."""

    def __init__(self, name, command, env, workdir):
        self.name = name
        self.logs = [open(workdir / f"{name}.{stream}", "w+") for stream in ("stdout", "stderr")]
        self.process = subprocess.Popen(command, env=env, cwd=workdir, stdout=self.logs[0], stderr=self.logs[1])

    def output(self):
        texts = []
        for log in self.logs:
            log.seek(0)
            texts.append(log.read())
        return tuple(texts)


class DataParallelRun(MultiWorkerRun):
    """Two `spgnet train --set run.strategy=data_parallel` processes (JAX) on 127.0.0.1, each
    with its own out_dir (as on separate machines); `initial[i]`: process i's weights at the
    start of fit."""

    def __init__(self, workdir, data_root):  # not MultiWorkerRun's: no TF_CONFIG
        workdir.mkdir(parents=True, exist_ok=True)
        sections = tiny_synthetic_sections(data_root, strategy="data_parallel")
        sections["data"]["val_max_images"] = 2  # one validation image per process
        sections["model"] = TINY_MODEL
        config = write_config(workdir / "data_parallel.yaml", sections)
        address = f"127.0.0.1:{free_ports(1)[0]}"
        self.out_dirs = [workdir / f"process{index}" for index in range(2)]
        self.initial = [workdir / f"initial{index}.npz" for index in range(2)]
        self.workers = []
        for index, out_dir in enumerate(self.out_dirs):
            env = jax_env(KERAS_DISTRIBUTION_JOB_ADDRESSES=address, KERAS_DISTRIBUTION_NUM_PROCESSES="2",
                          KERAS_DISTRIBUTION_PROCESS_ID=str(index))
            command = [sys.executable, str(SCRIPTS / "data_parallel_worker.py"), str(self.initial[index]),
                       "--config", str(config), "--set", f"run.out_dir={out_dir}"]
            child = Child(f"process{index}", command, env, workdir)
            self.workers.append((child.process, child.logs))


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory):
    """Starts both JAX runs: (train + export child, DataParallelRun, its folder)."""
    from spgnet_keras.data import write_synthetic_folder

    folder = tmp_path_factory.mktemp("jax_runs")
    data = write_synthetic_folder(folder / "synthetic", num_train=4, num_val=2, size=(64, 96))
    sections = tiny_synthetic_sections(data)
    sections["model"] = TINY_MODEL
    config = write_config(folder / "tiny.yaml", sections)
    # RGB 0-255 at a size that is not a multiple of 32: padded and cropped by model and SavedModel.
    np.save(folder / "images.npy", np.random.default_rng(2).uniform(0, 255, (2, 50, 70, 3)).astype("float32"))
    command = [sys.executable, str(SCRIPTS / "train_export_jax.py"), str(config), str(folder / "run"),
               str(folder / "export" / "1"), str(folder / "images.npy"), str(folder / "result.json")]
    single = Child("train_export", command, jax_env(), folder)
    parallel = DataParallelRun(folder / "data_parallel", data)
    yield single, parallel, folder
    parallel.kill()
    if single.process.poll() is None:
        single.process.kill()
    single.process.wait()


def finished(child, timeout=600):
    """(stdout, stderr) of a child that exited 0 (the test fails otherwise)."""
    try:
        code = child.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.process.kill()
        pytest.fail(f"{child.name} did not finish in {timeout} s")
    stdout, stderr = child.output()
    assert code == 0, stderr[-4000:]
    return stdout, stderr


def test_train_command_on_jax_writes_the_run_folder_of_tensorflow(jax_runs):
    single, _, folder = jax_runs
    stdout, stderr = finished(single)
    run = folder / "run"
    final = final_json(stdout)["final"]
    assert set(final) == {"loss", "prediction_miou", "val_loss", "val_prediction_miou"}
    assert all(math.isfinite(value) for value in final.values()), final
    assert RUN_FILES <= {str(path.relative_to(run)) for path in run.rglob("*") if path.is_file()}
    assert "report: " in stderr and len((run / "history.csv").read_text().splitlines()) == 2
    written = json.loads((run / "config.json").read_text())
    assert written["model"] == {**TINY_MODEL, "backbone_weights": None, "weights": None}
    assert written["run"]["strategy"] == "auto" and written["run"]["out_dir"] == str(run)
    assert json.loads((run / "data.json").read_text())["classes"]["names"] == list(SYNTHETIC_CLASSES)

    # The JAX checkpoint loads on TensorFlow and computes what it computed on JAX.
    model = keras.saving.load_model(run / "checkpoints" / "latest.keras", safe_mode=True)
    logits = model.predict(np.load(folder / "images.npy"), verbose=0)["prediction"]
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), np.load(run / "jax_probabilities.npy"), atol=1e-4)

    # On JAX, the TensorFlow strategies, a half-configured process group and ONNX export are refused.
    result = json.loads((folder / "result.json").read_text())
    assert "KERAS_BACKEND=tensorflow" in result["mirrored"] and "'data_parallel'" in result["mirrored"]
    assert "KERAS_DISTRIBUTION_JOB_ADDRESSES" in result["half_configured"]
    assert "run KERAS_BACKEND=tensorflow spgnet export" in result["onnx"]


def test_export_of_a_jax_trained_model_serves_what_jax_predicts(jax_runs):
    single, _, folder = jax_runs
    stdout, _ = finished(single)
    export = folder / "export" / "1"
    assert f"SavedModel written to {export}" in stdout
    metadata = json.loads((export / "assets.extra" / "spgnet_export.json").read_text())
    assert metadata["class_names"] == list(SYNTHETIC_CLASSES) and metadata["batchnorm_folded"] is True
    assert set(metadata["signatures"]) == set(SIGNATURES)

    served = tf.saved_model.load(str(export))
    assert set(served.signatures) == set(SIGNATURES)
    images = np.load(folder / "images.npy")
    outputs = served.signatures["predict_images_float"](images=tf.constant(images))
    expected = np.load(folder / "run" / "jax_probabilities.npy")
    assert outputs["probabilities"].shape == expected.shape == (2, 50, 70, len(SYNTHETIC_CLASSES))
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-4)
    agreement = np.mean(outputs["classes"].numpy() == expected.argmax(-1))
    assert agreement > 0.999, agreement
    assert outputs["image_sizes"].numpy().tolist() == [[50, 70], [50, 70]]


def test_data_parallel_two_processes_train_the_same_weights(jax_runs):
    _, run, _ = jax_runs
    outputs = run.wait(timeout=600)

    finals = [final_json(stdout)["final"] for stdout, _ in outputs]
    assert all(math.isfinite(v) for v in finals[0].values()), finals[0]
    assert finals[0] == finals[1]  # the logs of the global batch, on both processes
    assert all("report: not written by one process of a multi-process run" in stderr for _, stderr in outputs)
    models, initial = [], []
    for out_dir, initial_path in zip(run.out_dirs, run.initial):
        assert (out_dir / "checkpoints" / "best.keras").is_file() and not (out_dir / "report").exists()
        models.append(keras.saving.load_model(out_dir / "checkpoints" / "latest.keras", safe_mode=True))
        with np.load(initial_path) as saved:
            initial.append([saved[f"arr_{i}"] for i in range(len(saved.files))])
    weights = [model.get_weights() for model in models]
    assert len(weights[0]) == len(initial[0]) > 100
    for a, b, start_a, start_b in zip(*weights, *initial):
        assert np.array_equal(a, b) and np.array_equal(start_a, start_b)
    assert sum(not np.array_equal(a, start) for a, start in zip(weights[0], initial[0])) > 100


def test_data_parallel_needs_jax():
    with pytest.raises(ValueError, match="KERAS_BACKEND=jax"):
        make_strategy("data_parallel")


def test_multi_worker_patch_is_reached_only_by_multi_worker_runs(monkeypatch):
    """An unverified Keras refuses only runs that chose run.strategy=multiworker."""
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    model = object()
    for kind in ("default", "mirrored"):
        assert patch_fit_for_multi_worker(model, make_strategy(kind), element_spec=None) is model


def test_export_child_errors_are_raised_again_by_name():
    assert package_error("InvalidInputError") is not TensorFlowExportError
    assert issubclass(package_error("InvalidInputError"), ValueError)
    assert package_error("ExportWriteError") is ExportWriteError
    assert package_error("KeyError") is TensorFlowExportError
    env = tensorflow_env()
    assert env["KERAS_BACKEND"] == "tensorflow" and not any(k.startswith("KERAS_DISTRIBUTION_") for k in env)

