"""Where training runs: the strategy of a run (`make_strategy`: a `tf.distribute` strategy on
TensorFlow, a `keras.distribution.DataParallel` on JAX) and the opt-in multi-worker patch of
Keras' fit (`patch_fit_for_multi_worker`, keras-team/keras#20585)."""

import contextlib
import os

import keras
import tensorflow as tf

from spgnet_keras.config_checks import STRATEGIES
from spgnet_keras.errors import InvalidInputError, SPGNetError


def make_strategy(kind="auto"):
    """The strategy of `run.strategy` on the current Keras backend.

    TensorFlow: "auto": `MirroredStrategy` over all local GPUs when there are several, else
    the default strategy; "mirrored": `MirroredStrategy` over every local device of the
    first kind (GPUs, else logical CPUs); "multiworker": `MultiWorkerMirroredStrategy`
    configured by the `TF_CONFIG` environment variable.

    JAX: "data_parallel": `keras.distribution.DataParallel` over every device of every
    process (the processes named by the `KERAS_DISTRIBUTION_*` variables, see
    `join_processes`); "auto": the same over the local devices when there are several;
    "default" (and "auto" on one device): no distribution.
    """
    if kind not in STRATEGIES:
        raise InvalidInputError(f"`strategy` must be one of {STRATEGIES}, got {kind!r}.")
    if keras.backend.backend() == "jax":
        return jax_strategy(kind)
    if kind == "data_parallel":
        raise InvalidInputError("strategy 'data_parallel' is keras.distribution on JAX: run with KERAS_BACKEND=jax "
                                "(on TensorFlow: 'mirrored', or 'multiworker' with TF_CONFIG).")
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


def jax_strategy(kind):
    """`make_strategy` on JAX: a `keras.distribution.DataParallel`, or the (no-op) default strategy."""
    if kind in ("mirrored", "multiworker"):
        raise InvalidInputError(f"strategy {kind!r} is a tf.distribute strategy (KERAS_BACKEND=tensorflow); on JAX "
                                "use 'data_parallel' (several devices or processes, keras.distribution).")
    if kind == "data_parallel":
        join_processes()
    elif kind == "default" or len(keras.distribution.list_devices()) == 1:
        return tf.distribute.get_strategy()
    # Sharded by `process_part`: Keras' auto-sharding cannot read the batch size of a pipeline
    # that maps after batching (the padded validation batches).
    return keras.distribution.DataParallel(auto_shard_dataset=False)


# What `keras.distribution.initialize` reads: the coordinator (process 0) "HOST:PORT", the
# number of processes and this one's index (0 .. N-1).
PROCESS_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                     "KERAS_DISTRIBUTION_PROCESS_ID")


def join_processes():
    """Joins this process to the others of a multi-process JAX run with
    `keras.distribution.initialize` (CPU collectives: JAX's default, gloo over TCP), once;
    nothing when `KERAS_DISTRIBUTION_NUM_PROCESSES` is unset (one process, its own devices)."""
    import jax

    if "KERAS_DISTRIBUTION_NUM_PROCESSES" not in os.environ or jax.distributed.is_initialized():
        return
    missing = [name for name in PROCESS_VARIABLES if name not in os.environ]
    if missing:
        raise InvalidInputError(f"strategy 'data_parallel' on several processes needs {', '.join(PROCESS_VARIABLES)}; "
                                f"{', '.join(missing)} is not set.")
    keras.distribution.initialize()


def is_keras_distribution(strategy):
    """True for a `keras.distribution` (JAX), False for a `tf.distribute` strategy."""
    return isinstance(strategy, (keras.distribution.DataParallel, keras.distribution.ModelParallel))


def replicas_in_sync(strategy):
    """How many replicas share each global batch: devices of a `keras.distribution` mesh, or
    `num_replicas_in_sync` of a `tf.distribute` strategy."""
    if is_keras_distribution(strategy):
        return int(strategy.device_mesh.devices.size)
    return strategy.num_replicas_in_sync


def fit_scope(strategy):
    """What `fit` runs in: a `keras.distribution` applies only while its scope is active (a
    `tf.distribute` model keeps the strategy it was built under: no scope)."""
    return strategy.scope() if is_keras_distribution(strategy) else contextlib.nullcontext()


def check_batch_divides(batch_size, strategy):
    """InvalidInputError when a `keras.distribution` cannot split `batch_size` evenly over its devices."""
    replicas = replicas_in_sync(strategy)
    if is_keras_distribution(strategy) and batch_size % replicas:
        raise InvalidInputError(f"data.batch_size {batch_size} does not split over the {replicas} devices of "
                                f"keras.distribution.DataParallel: choose a multiple of {replicas}.")


def process_part(dataset, global_batch_size, strategy):
    """This process's share of every global batch of `dataset` under a multi-process
    `keras.distribution` (what Keras' auto-sharding does: split each batch into one part per
    process, keep this process's part); `dataset` itself otherwise."""
    if not is_keras_distribution(strategy) or strategy.num_processes == 1:
        return dataset
    processes = strategy.num_processes
    return dataset.rebatch(global_batch_size // processes).shard(processes, strategy.data_shard_id)


def is_one_of_several_processes():
    """True in a process of a multi-process run (`TF_CONFIG` of MultiWorkerMirroredStrategy, or
    `KERAS_DISTRIBUTION_NUM_PROCESSES` above 1 for keras.distribution on JAX)."""
    return "TF_CONFIG" in os.environ or int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1")) > 1


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
