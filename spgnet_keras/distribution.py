"""Where training runs: the `tf.distribute` strategy of a run (`make_strategy`) and the
multi-worker patch of Keras' fit (`patch_fit_for_multi_worker`, keras-team/keras#20585)."""

import os

import keras
import tensorflow as tf

from spgnet_keras.config_checks import STRATEGIES
from spgnet_keras.errors import InvalidInputError, SPGNetError


def make_strategy(kind="auto"):
    """A `tf.distribute` strategy.

    "auto": `MirroredStrategy` over all local GPUs when there are several, else the
    default strategy; "mirrored": `MirroredStrategy` over every local device of the
    first kind (GPUs, else logical CPUs); "multiworker": `MultiWorkerMirroredStrategy`
    configured by the `TF_CONFIG` environment variable.
    """
    if kind not in STRATEGIES:
        raise InvalidInputError(f"`strategy` must be one of {STRATEGIES}, got {kind!r}.")
    if kind == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise InvalidInputError("strategy 'multiworker' needs the TF_CONFIG environment variable.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if kind == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if kind == "auto" and len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_multi_worker(strategy):
    """True for a `MultiWorkerMirroredStrategy` spanning more than one worker."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


# Keras minor versions on which the multi-worker patch below passed
# tests/training/test_distributed.py::test_multiworker_train_command_two_workers (3.13.2,
# 3.14.1, 3.15.1); it replaces private Trainer methods, so other versions are refused.
MULTI_WORKER_VERIFIED_KERAS = ("3.13", "3.14", "3.15")


class UnverifiedKerasError(SPGNetError, RuntimeError):
    """Multi-worker training was asked of a Keras version its patch was not verified on."""


def check_keras_verified_for_multi_worker(version):
    """Raises UnverifiedKerasError unless Keras `version` is one the multi-worker patch was verified on."""
    minor = ".".join(version.split(".")[:2])
    if minor not in MULTI_WORKER_VERIFIED_KERAS:
        raise UnverifiedKerasError(
            f"Multi-worker training patches private Keras internals (keras-team/keras#20585) and was "
            f"verified on Keras {', '.join(MULTI_WORKER_VERIFIED_KERAS)}; this is Keras {version}. "
            "Install a verified version (pip install 'keras>=3.13,<3.16') or train on one worker "
            "(MirroredStrategy needs no patch)."
        )


def patch_fit_for_multi_worker(model, strategy, element_spec):
    """Lets `model.fit`/`evaluate` run under a multi-worker `MultiWorkerMirroredStrategy`.

    Keras 3 (checked with 3.15) fails there in two places (keras-team/keras#20585):
    `_maybe_symbolic_build` calls `strategy.reduce` on the nested `PerReplica` first
    batch ("Attempt to convert a value (PerReplica...)"), and `reduce_per_replica`
    averages the scalar logs of each step with `strategy.reduce("MEAN", v, axis=0)`
    ("Invalid reduction dimension 0 for input with 0 dimensions"). On this model only,
    the symbolic build gets the dataset's `element_spec` (shapes and dtypes are all it
    reads) and the step functions return their logs with shape [1], which that reduce
    averages over all replicas of all workers into scalars, the same on every worker
    (so that, e.g., every worker stops at the same non-finite loss). No-op otherwise.
    """
    if not is_multi_worker(strategy):
        return model
    check_keras_verified_for_multi_worker(keras.__version__)
    symbolic_build = model._maybe_symbolic_build
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: symbolic_build(
        data_batch=element_spec if data_batch is None else data_batch
    )

    def with_rank1_logs(step):
        def wrapped(data):
            return {name: tf.reshape(value, [1]) for name, value in step(data).items()}

        return wrapped

    model.train_step = with_rank1_logs(model.train_step)
    model.test_step = with_rank1_logs(model.test_step)
    return model
