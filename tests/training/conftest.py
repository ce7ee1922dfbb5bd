"""Fixtures of the training tests: data locations, a tiny synthetic dataset, a float32
policy guard and helpers running child interpreters.

The 2-replica MirroredStrategy script (slow: it traces a two-replica graph) and the two
MultiWorkerMirroredStrategy workers run in their own processes; they are started in the
background when the first test of this folder starts and their tests are moved to the end
of the session, so the other tests of this folder run meanwhile.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest

from tests.shared_data import shared_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A tiny SYNTHETIC folder dataset (8 classes): 4 train and 2 val scenes of 64x96."""
    from spgnet_keras.data import write_synthetic_folder

    return write_synthetic_folder(tmp_path_factory.mktemp("synthetic"), num_train=4, num_val=2, size=(64, 96))


@pytest.fixture
def float32_policy():
    """Restores the global dtype policy to float32 whatever the test did."""
    keras.mixed_precision.set_dtype_policy("float32")
    yield
    keras.mixed_precision.set_dtype_policy("float32")


def script_env(**extra):
    """Environment for a child interpreter that imports the package from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


class BackgroundScript:
    """`scripts/<name>` running in a child interpreter, its output going to files."""

    def __init__(self, name, *args, workdir):
        self.name = name
        workdir.mkdir(parents=True, exist_ok=True)
        self.stdout = open(workdir / f"{name}.stdout", "w+")
        self.stderr = open(workdir / f"{name}.stderr", "w+")
        self.process = subprocess.Popen([sys.executable, str(SCRIPTS / name), *map(str, args)], env=script_env(),
                                        cwd=REPO_ROOT, stdout=self.stdout, stderr=self.stderr)

    def wait(self, timeout):
        """Waits for the script; fails the test (killing it) on timeout or a non-zero exit."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name} did not finish in {timeout} s; output tail:\n{self.output()}")
        if code != 0:
            pytest.fail(f"{self.name} exited with {code}; output tail:\n{self.output()}")

    def output(self):
        self.stderr.seek(0)
        return _tail(self.stderr.read())

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stdout.close()
        self.stderr.close()


class MultiWorkerRun:
    """Two `spgnet train` processes forming a 2-worker MultiWorkerMirroredStrategy cluster on
    127.0.0.1, each with its own out_dir (as on separate machines)."""

    def __init__(self, workdir, data_root):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        sections = tiny_synthetic_sections(data_root, epochs=2, strategy="multiworker")
        sections["data"]["val_max_images"] = 2  # one validation image per worker
        sections["model"] = {"preset": "spgnet_r18x1_128", "arguments": {"decoder_channels": 8}}
        config = write_config(workdir / "multiworker.yaml", sections)
        cluster = [f"127.0.0.1:{port}" for port in free_ports(2)]
        self.out_dirs = [workdir / f"worker{index}" for index in range(2)]
        self.workers = []
        for index, out_dir in enumerate(self.out_dirs):
            tf_config = json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})
            command = [sys.executable, "-m", "spgnet_keras.cli", "train", "--config", str(config),
                       "--set", f"run.out_dir={out_dir}"]
            logs = [open(workdir / f"worker{index}.{stream}", "w+") for stream in ("stdout", "stderr")]
            process = subprocess.Popen(command, env=script_env(TF_CONFIG=tf_config), cwd=REPO_ROOT,
                                       stdout=logs[0], stderr=logs[1])
            self.workers.append((process, logs))

    def wait(self, timeout):
        """[(stdout, stderr)] of both workers; fails the test if one fails or they time out.
        A failed worker leaves the other blocked in a collective, so both are stopped."""
        deadline = time.monotonic() + timeout
        processes = [process for process, _ in self.workers]
        while any(p.poll() is None for p in processes) and all(p.poll() in (None, 0) for p in processes):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        timed_out = time.monotonic() > deadline
        self.kill()
        outputs = []
        for process, logs in self.workers:
            texts = []
            for log in logs:
                log.seek(0)
                texts.append(log.read())
                log.close()
            outputs.append(tuple(texts))
        for index, (process, (_, stderr)) in enumerate(zip(processes, outputs)):
            if process.returncode != 0:
                pytest.fail(f"worker {index} exited with {process.returncode}"
                            f"{f' (killed after {timeout} s)' if timed_out else ''}:\n{_tail(stderr)}")
        return outputs

    def kill(self):
        for process, _ in self.workers:
            if process.poll() is None:
                process.kill()
            process.wait()


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# Slow runs in child processes, started in the background when the first test of this
# folder starts (not earlier: other folders' tests, e.g. timing ones, run undisturbed), if
# their tests are selected; those tests are moved to the end of the session.
MIRRORED_TEST = "test_mirrored_two_replicas_sync_bn_deep_supervision_ohem"
MULTIWORKER_TEST = "test_multiworker_train_command_two_workers"
_background = {}
_selected = set()


def background(key, start):
    """The run `key`, started now with `start()` if the session did not start it."""
    if key not in _background:
        _background[key] = start()
    return _background[key]


def start_mirrored(workdir):
    workdir.mkdir(parents=True, exist_ok=True)
    root = shared_dataset("camvid", "meta.json")  # fails the test when missing
    return BackgroundScript("mirrored_fit.py", root, workdir / "result.json", workdir=workdir), workdir / "result.json"


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.name in (MIRRORED_TEST, MULTIWORKER_TEST))  # stable: moves them last


def pytest_collection_finish(session):
    _selected.update({item.name for item in session.items} & {MIRRORED_TEST, MULTIWORKER_TEST})


def pytest_runtest_setup(item):
    """Called for the tests of this folder only: starts the background runs once."""
    import tempfile

    if not _selected or "workdir" in _background:
        return
    workdir = _background["workdir"] = Path(tempfile.mkdtemp(prefix="spgnet-training-tests-"))
    if MIRRORED_TEST in _selected:
        try:
            background("mirrored", lambda: start_mirrored(workdir / "mirrored"))
        except pytest.fail.Exception:
            pass  # no CamVid: the test itself fails (camvid_root)
    if MULTIWORKER_TEST in _selected:
        from spgnet_keras.data import write_synthetic_folder

        data = write_synthetic_folder(workdir / "synthetic", num_train=4, num_val=2, size=(64, 96))
        background("multiworker", lambda: MultiWorkerRun(workdir / "multiworker", data))


def pytest_sessionfinish(session):
    import shutil

    if "mirrored" in _background:
        _background.pop("mirrored")[0].kill()
    if "multiworker" in _background:
        _background.pop("multiworker").kill()
    if "workdir" in _background:
        shutil.rmtree(_background.pop("workdir"), ignore_errors=True)


def _tail(text, lines=40):
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join((text or "").splitlines()[-lines:])


def write_config(path, sections):
    """Writes `sections` ({"experiment": NAME, section: {key: value}}) as a YAML file."""
    import yaml

    path = Path(path)
    path.write_text(yaml.safe_dump(sections, sort_keys=False))
    return path


def tiny_synthetic_sections(root, **run):
    """Config sections for a tiny SYNTHETIC run (crops 64x96, batch 4, one val image)."""
    return {
        "experiment": "synthetic_demo",
        "data": {"root": str(root), "crop_size": [64, 96], "batch_size": 4, "val_max_images": 1},
        "run": {"epochs": 1, "steps_per_epoch": 2, "verbose": 0, **run},
    }
