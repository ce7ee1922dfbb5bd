"""Shared helpers of the benchmark scripts: machine description, markdown sections, paths.

Every script writes one or more sections of `docs/benchmarks.md` between the markers
`<!-- benchmark:KEY:begin -->` and `<!-- benchmark:KEY:end -->`; a re-run replaces
its own section and leaves the others alone.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
RESULTS = REPO / "benchmarks" / "results"

if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(1, str(REPO))

DOC_HEADER = """# Benchmarks

Made by the scripts in `benchmarks/`; each section names the command that wrote it, the machine,
the load average while it ran and the package versions. Every script takes `--quick` (a
minutes-long sanity run) and writes its own section of this file (re-runs replace it).

Reading the numbers: the machine is a shared 2-core CPU (other jobs come and go), so absolute
times move by tens of per cent between runs. Ratios are measured within one run, with the
models timed in interleaved rounds (one call of each model per round) and medians taken, so
that a change of load hits every model alike.
"""


def setup_tensorflow_logging():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load_average():
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    except OSError:
        pass
    return []


def memory_gib():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def git_commit():
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions():
    import keras
    import numpy
    import tensorflow as tf

    import spgnet_keras

    result = {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
              "numpy": numpy.__version__, "spgnet_keras": spgnet_keras.__version__}
    try:
        import keras_cv

        result["keras_cv"] = keras_cv.__version__
    except ImportError:
        pass
    return result


def command_line():
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(REPO)
    except ValueError:
        pass
    return f"python {script} {args}".strip()


class Machine:
    """What the run ran on; `load_start` is taken at construction, `finish()` records the end."""

    def __init__(self):
        self.date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        self.nproc = os.cpu_count()
        self.cpu = cpu_model()
        self.flags = cpu_flags()
        self.memory = memory_gib()
        self.load_start = load_average()
        self.load_samples = [self.load_start[0]]
        self.load_end = None
        self.started = time.time()
        self.seconds = None
        self.commit = git_commit()
        self.versions = versions()

    def sample_load(self):
        self.load_samples.append(load_average()[0])

    def finish(self):
        self.load_end = load_average()
        self.load_samples.append(self.load_end[0])
        self.seconds = time.time() - self.started

    def markdown(self, command=None):
        command = command or getattr(self, "command", None)
        load_end = self.load_end or load_average()
        versions = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        samples = self.load_samples
        lines = [
            f"- Command: `{command or command_line()}`",
            f"- Date: {self.date}; run time {self.seconds / 60:.1f} min" if self.seconds else f"- Date: {self.date}",
            f"- Machine: `nproc` = {self.nproc}, CPU \"{self.cpu}\" ({', '.join(self.flags) or 'no AVX flags seen'}), "
            f"{self.memory:.0f} GiB RAM, no GPU",
            f"- Load average (1/5/15 min): {_fmt_load(self.load_start)} at the start, {_fmt_load(load_end)} at the end; "
            f"1-min load sampled during the run: min {min(samples):.2f}, median {statistics.median(samples):.2f}, "
            f"max {max(samples):.2f} (2 cores: a load above 2 means other jobs shared the CPU)",
            f"- Versions: {versions}; commit {self.commit}",
        ]
        return "\n".join(lines)

    @classmethod
    def from_dict(cls, data, command=None):
        """A Machine re-made from `to_dict()` output (to re-render a stored result)."""
        machine = cls.__new__(cls)
        machine.date, machine.nproc, machine.cpu = data["date"], data["nproc"], data["cpu"]
        machine.flags, machine.memory = data["flags"], data["memory_gib"]
        machine.load_start, machine.load_end = tuple(data["load_start"]), tuple(data["load_end"])
        machine.load_samples, machine.seconds = data["load_samples"], data["seconds"]
        machine.commit, machine.versions = data["commit"], data["versions"]
        machine.started = None
        machine.command = command
        return machine

    def to_dict(self):
        return dict(date=self.date, nproc=self.nproc, cpu=self.cpu, flags=self.flags, memory_gib=self.memory,
                    load_start=self.load_start, load_end=self.load_end, load_samples=self.load_samples,
                    seconds=self.seconds, commit=self.commit, versions=self.versions)


def _fmt_load(load):
    return "/".join(f"{v:.2f}" for v in load)


def write_section(key, markdown, doc=DOC):
    """Replaces (or appends) section `key` of the benchmarks document."""
    begin, end = f"<!-- benchmark:{key}:begin -->", f"<!-- benchmark:{key}:end -->"
    text = doc.read_text() if doc.exists() else DOC_HEADER
    block = f"{begin}\n{markdown.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    return doc


def write_json(path, payload):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_json_default))
    return path


def _json_default(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:
        pass
    return str(value)


def camvid_root(explicit=None):
    """CamVid folder: --data-root, $SPGNET_DATA_DIR(/camvid), or <repo>/../shared/data/camvid."""
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    env = os.environ.get("SPGNET_DATA_DIR")
    if env:
        candidates += [Path(env) / "camvid", Path(env)]
    candidates.append(REPO.parent / "shared" / "data" / "camvid")
    for path in candidates:
        if (path / "train").is_dir() and (path / "val").is_dir():
            return path
    raise FileNotFoundError(
        "CamVid not found; pass --data-root or set SPGNET_DATA_DIR. Looked in: " + ", ".join(map(str, candidates))
    )


def median(values):
    return statistics.median(values) if values else float("nan")


def spread(values):
    """(min, max) of values."""
    return (min(values), max(values)) if values else (float("nan"), float("nan"))


class CompiledModel:
    """`model(x, training=False)` through one `tf.function` (evaluate() calls the model per image)."""

    def __init__(self, model):
        import tensorflow as tf

        self.output = model.output
        self._function = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self, x, training=False):
        return self._function(x)


def parse_size(text):
    """`"HxW"` (e.g. `512x1024`) as `(height, width)` ints; ValueError when it is not that."""
    height, width = (int(side) for side in text.lower().split("x"))
    return height, width


def comma_choices(parser, text, choices, what):
    """The comma-separated values of `text`; a parser error naming `what` for one not in `choices`."""
    values = [value for value in text.split(",") if value]
    for value in values:
        if value not in choices:
            parser.error(f"unknown {what} {value!r}; expected {list(choices)}")
    return values


def publish(section, markdown, write_doc=True, log=None, doc=DOC):
    """Prints `markdown` and, with `write_doc`, writes it as section `section` of the benchmarks document.

    Args:
        section: str. The section key (`<!-- benchmark:KEY:begin -->`).
        markdown: str. The section's text.
        write_doc: bool. Whether to write the document (the scripts' `--no-doc` turns it off).
        log: optional callable. Told which section of which file was written.
        doc: path. The document (default `docs/benchmarks.md`).
    """
    print(markdown)
    if write_doc:
        write_section(section, markdown, doc)
        if log is not None:
            log(f"wrote section {section!r} of {doc}")


# ----------------------------------------------------------------------------- speed models
# The reference models that inference_speed.py (CPU, TensorFlow) and gpu_speed.py (GPU, JAX) both time.

NUM_CLASSES = 19  # Cityscapes
SPGNET_MODELS = ("spgnet_r18x1_128", "spgnet_r18x2_128", "spgnet_r50x2_256")
MODEL_LABELS = {
    "resnet50": "ResNet-50 (keras.applications, no top)",
    "spgnet_r18x1_128": "SPGNet 1xR18, D=128",
    "spgnet_r18x2_128": "SPGNet 2xR18, D=128",
    "spgnet_r50x2_256": "SPGNet 2xR50, D=256",
}


def build_model(name, height, width, builders=None, num_classes=NUM_CLASSES):
    """A model of the speed benchmarks with a fixed `(height, width, 3)` input and random weights.

    Args:
        name: str. `"resnet50"` (`keras.applications.ResNet50`, no top), an SPGNet preset of
            `SPGNET_MODELS` (its `"prediction"` output only: the deep-supervision outputs are
            training-only), or a key of `builders`.
        height: int. Input height.
        width: int. Input width.
        builders: optional dict. The calling script's other models: name -> callable taking
            the input shape `(height, width, 3)`.
        num_classes: int. Classes of the SPGNet presets.

    Returns:
        A `keras.Model`.

    Raises:
        ValueError: An unknown `name`.
    """
    import keras

    from spgnet_keras.models.spgnet import PREDICTION, SPGNet

    shape = (height, width, 3)
    builders = dict(builders or {})
    if name == "resnet50":
        return keras.applications.ResNet50(include_top=False, weights=None, input_shape=shape)
    if name in SPGNET_MODELS:
        model = SPGNet.from_preset(name, num_classes, image_shape=shape)
        return keras.Model(model.input, model.output[PREDICTION], name=name)
    if name in builders:
        return builders[name](shape)
    raise ValueError(f"Unknown model {name!r}; expected one of {['resnet50', *SPGNET_MODELS, *builders]}.")
