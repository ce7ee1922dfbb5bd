"""Shared by the example tests: where the repository, examples and shared data are."""

import os

from tests.shared_data import REPOSITORY, shared_data_dir

EXAMPLES = REPOSITORY / "examples"


def example_environment(tmp_path, **extra):
    """os.environ for a child process: the repository importable, quiet TF, outputs in tmp."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPOSITORY), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["SPGNET_DATA_DIR"] = str(shared_data_dir())
    env["MPLBACKEND"] = "Agg"
    env.update({key: str(value) for key, value in extra.items()})
    return env
