"""Training SPGNet with `model.fit`: strategy, model, data, compile and callbacks (Sec 4.2)."""

import json
import os
from pathlib import Path

import keras
import tensorflow as tf

from spgnet_keras.callbacks import (AtomicCheckpoint, GuardedBackupAndRestore, StopOnNonFiniteLoss,
                                    TrainingDivergedError)
from spgnet_keras.config import PRECISIONS, STRATEGIES, config_to_dict
from spgnet_keras.losses import deep_supervision_losses
from spgnet_keras.models.presets import preset_arguments
from spgnet_keras.models.spgnet import PREDICTION, SPGNet, default_metric
from spgnet_keras.optimizers import build_sgd
from spgnet_keras.schedules import PolyDecay

FINISHED_FILE = "finished.json"


class RunFinished(Exception):
    """`train` was asked for no more epochs than its output folder's run already finished."""


def make_strategy(kind="auto"):
    """A `tf.distribute` strategy.

    "auto": `MirroredStrategy` over all local GPUs when there are several, else the
    default strategy; "mirrored": `MirroredStrategy` over every local device of the
    first kind (GPUs, else logical CPUs); "multiworker": `MultiWorkerMirroredStrategy`
    configured by the `TF_CONFIG` environment variable.
    """
    if kind not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}, got {kind!r}.")
    if kind == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy 'multiworker' needs the TF_CONFIG environment variable.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if kind == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if kind == "auto" and len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def set_precision(policy):
    """Global dtype policy; SPGNet keeps its logits (and the losses) in float32."""
    if policy not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {PRECISIONS}, got {policy!r}.")
    keras.mixed_precision.set_dtype_policy(policy)


def build_model(config, num_classes, crop_size=None):
    """SPGNet from a `ModelConfig` (preset + argument overrides) and optional backbone weights.

    With the training `crop_size` known, the model pools crop-sized at test time
    (`test_pooling="crop"`, In-Place ABN's test-time pooling; training pools globally):
    on CamVid val it scored higher than global pooling (docs/benchmarks.md, "Test-time
    pooling"). `model.arguments.test_pooling: global` keeps global pooling.
    """
    arguments = {**preset_arguments(config.preset), **config.arguments}
    if crop_size is not None and "test_pooling" not in arguments:
        arguments.update(test_pooling="crop", test_pooling_crop=[int(side) for side in crop_size])
    model = SPGNet(num_classes=num_classes, **arguments)
    if config.backbone_weights:
        from spgnet_keras.models.imagenet import load_backbone_weights

        load_backbone_weights(model, config.backbone_weights)
    return model


def recipe_compile_arguments(model, optimizer_config, loss_config, max_steps):
    """`model.compile` arguments of the paper's recipe (Sec 4.2): SGD with poly decay, the
    cross-entropy (+OHEM, class weights) on every output weighted by `stage_weight`, and
    the default mIoU metric. Use as `model.compile(**recipe_compile_arguments(...))`."""
    output_names = list(model.output.keys())
    losses, weights = deep_supervision_losses(
        output_names,
        stage_weight=loss_config.stage_weight,
        ohem_threshold=loss_config.ohem_threshold,
        ohem_min_kept=loss_config.ohem_min_kept,
        ohem_top_k=loss_config.ohem_top_k,
        class_weights=loss_config.class_weights,
    )
    schedule = PolyDecay(
        optimizer_config.learning_rate,
        max_steps=max_steps,
        power=optimizer_config.power,
        warmup_steps=optimizer_config.warmup_steps,
    )
    optimizer = build_sgd(schedule, momentum=optimizer_config.momentum, weight_decay=optimizer_config.weight_decay,
                          weight_decay_mode=optimizer_config.weight_decay_mode,
                          decay_variables=optimizer_config.decay_variables)
    metrics = {PREDICTION: [default_metric(model.output[PREDICTION].shape[-1])]}
    return dict(optimizer=optimizer, loss=losses, loss_weights=weights, metrics=metrics)


def make_datasets(data_config, seed, global_batch_size, val_batch_size=1, skip_batches=0):
    """(train, val, DatasetSpec, num_classes) tf.data pipelines for a `DataConfig`.

    `val_batch_size` should be the number of replicas in sync, so that every replica
    gets an image of each validation batch (with a global batch of 1, all replicas but
    one get an empty batch, which oneDNN's CPU Conv2D mis-shapes: evaluation crashes).
    `data.val_max_images` is then rounded up to whole batches. `skip_batches`: the
    training stream starts after that many batches (a resumed run; see `make_dataset`).
    """
    from spgnet_keras.data import dataset_spec, make_dataset

    if data_config.root is None:
        raise ValueError(f"data.root is required for dataset {data_config.dataset!r}.")
    spec = dataset_spec(data_config.dataset, data_config.root)
    num_classes = data_config.num_classes or spec.num_classes
    if data_config.num_classes and spec.num_classes and data_config.num_classes != spec.num_classes:
        raise ValueError(
            f"data.num_classes={data_config.num_classes} disagrees with the {spec.num_classes} classes "
            f"of dataset {data_config.dataset!r} at {data_config.root}."
        )
    common = dict(root=data_config.root, num_classes=num_classes, mask_format=data_config.mask_format,
                  validate=data_config.validate)
    if data_config.mask_format == "color":
        common["palette"] = spec.palette
    train = make_dataset(
        data_config.dataset, data_config.train_split, batch_size=global_batch_size,
        crop_size=tuple(data_config.crop_size), training=True, seed=seed,
        scales=data_config.scales, flip=data_config.flip, repeat=True, skip_batches=skip_batches, **common,
    )
    val = make_dataset(data_config.dataset, data_config.val_split, batch_size=val_batch_size, training=False,
                       pad_to_multiple=32, **common)
    if data_config.val_max_images:
        val = val.take(-(-data_config.val_max_images // val_batch_size))
    return train, val, spec, num_classes


def is_multi_worker(strategy):
    """True for a `MultiWorkerMirroredStrategy` spanning more than one worker."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


# Keras minor versions on which the multi-worker patch below passed
# tests/training/test_distributed.py::test_multiworker_train_command_two_workers (3.13.2,
# 3.14.1, 3.15.1); it replaces private Trainer methods, so other versions are refused.
MULTI_WORKER_VERIFIED_KERAS = ("3.13", "3.14", "3.15")


def check_keras_verified_for_multi_worker(version):
    """Raises RuntimeError unless Keras `version` is one the multi-worker patch was verified on."""
    minor = ".".join(version.split(".")[:2])
    if minor not in MULTI_WORKER_VERIFIED_KERAS:
        raise RuntimeError(
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


def resumed_epoch(backup_dir):
    """The epoch `BackupAndRestore` will resume at (0 when there is no backup)."""
    metadata = Path(backup_dir) / "training_metadata.json"
    if not metadata.is_file():
        return 0
    return int(json.loads(metadata.read_text())["epoch"])


def make_callbacks(out_dir, monitor=f"val_{PREDICTION}_miou"):
    """Non-finite-loss guard, atomic checkpoints, BackupAndRestore, CSV and TensorBoard logs.

    Backups are written at every epoch end (shorten `steps_per_epoch` for finer ones):
    Keras' `BackupAndRestore` restores weights, optimizer state (so the learning-rate
    schedule's step) and the epoch, but not a position inside an epoch.
    """
    out_dir = Path(out_dir)
    guard = StopOnNonFiniteLoss()
    checkpoint = AtomicCheckpoint(out_dir / "checkpoints", guard=guard, monitor=monitor)
    return [
        guard,
        GuardedBackupAndRestore(str(out_dir / "backup"), guard, save_freq="epoch"),
        checkpoint,
        keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(out_dir / "tensorboard"), write_graph=False, profile_batch=0),
    ], guard, checkpoint


def finished_run(out_dir):
    """The record `train` leaves in `out_dir` when a run ends (None if none has)."""
    path = Path(out_dir) / FINISHED_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def train(config):
    """Runs an `ExperimentConfig`: returns (model, history dict, checkpoint callback).

    Re-running the same command after a crash resumes from `<out_dir>/backup` at the
    start of the epoch after the last completed one (weights, optimizer state and so the
    learning-rate schedule; the data stream is skipped to the same position). A non-finite loss stops
    the run with `TrainingDivergedError`, leaving the last good checkpoint in place.

    A run that ended leaves `<out_dir>/finished.json`. Running it again with no more
    epochs raises `RunFinished` and touches nothing; with more epochs (`run.epochs`) it
    continues from `checkpoints/latest.keras` at the next epoch: the poly schedule is
    stretched over the new total (the learning rate rises again from 0), the momentum
    restarts, and `best.keras` is replaced only by a better epoch.
    """
    from spgnet_keras.config import check_values

    check_values(config)
    set_precision(config.run.precision)
    keras.utils.set_random_seed(config.run.seed)
    out_dir = Path(config.run.out_dir)
    finished = finished_run(out_dir)
    if finished is not None and config.run.epochs <= finished["epochs"]:
        raise RunFinished(
            f"The run in {out_dir} already finished {finished['epochs']} epochs; its checkpoints are kept. "
            f"To train longer, ask for more epochs (--set run.epochs={finished['epochs'] * 2}); to start "
            "again, choose another run.out_dir."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config_to_dict(config), indent=2))
    strategy = make_strategy(config.run.strategy)
    global_batch = config.data.batch_size
    start_epoch = resumed_epoch(out_dir / "backup")
    continuing = finished is not None and start_epoch < finished["epochs"]
    if continuing:
        start_epoch = finished["epochs"]
    # The training stream is a deterministic function of the seed; a resumed run starts it
    # after the batches the completed epochs consumed (skipped before decoding), so it sees
    # the same batches as an uninterrupted one.
    train_data, val_data, spec, num_classes = make_datasets(
        config.data, config.run.seed, global_batch, val_batch_size=strategy.num_replicas_in_sync,
        skip_batches=start_epoch * config.run.steps_per_epoch,
    )
    with strategy.scope():
        model = build_model(config.model, num_classes, crop_size=config.data.crop_size)
        arguments = recipe_compile_arguments(model, config.optimizer, config.loss, config.max_steps)
        model.compile(**arguments, jit_compile=config.run.jit_compile)
    # Keras prefixes metric names with the output name only when there are several outputs.
    monitor = f"val_{PREDICTION}_miou" if len(model.output) > 1 else "val_miou"
    callbacks, guard, checkpoint = make_callbacks(out_dir, monitor=monitor)
    if continuing:
        continue_finished_run(model, strategy, checkpoint.latest_path, finished, config)
    patch_fit_for_multi_worker(model, strategy, train_data.element_spec)
    history = model.fit(
        train_data,
        epochs=config.run.epochs,
        initial_epoch=start_epoch,
        steps_per_epoch=config.run.steps_per_epoch,
        validation_data=val_data,
        validation_steps=config.run.validation_steps,
        callbacks=callbacks,
        verbose=config.run.verbose,
        shuffle=False,  # tf.data pipelines shuffle themselves (seeded)
    )
    if guard.bad_step is not None:
        raise TrainingDivergedError(
            f"Training stopped: the loss became {guard.bad_value} at step {guard.bad_step}. "
            f"The last good checkpoint ({checkpoint.latest_path}) was left untouched."
        )
    record = {"epochs": config.run.epochs, "steps_per_epoch": config.run.steps_per_epoch,
              "latest": str(checkpoint.latest_path), "best": checkpoint.best, "monitor": monitor}
    (out_dir / FINISHED_FILE).write_text(json.dumps(record, indent=2))
    return model, history.history, checkpoint


def continue_finished_run(model, strategy, latest_path, finished, config):
    """Loads a finished run's last weights into `model`, sets the optimizer's step count,
    and returns the epoch to continue at."""
    from spgnet_keras.models.checkpoints import load_model_weights

    if not Path(latest_path).is_file():
        raise RunFinished(f"The finished run's checkpoint {latest_path} is missing: cannot continue it.")
    load_model_weights(model, latest_path)
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(finished["epochs"] * finished.get("steps_per_epoch", config.run.steps_per_epoch))
    return finished["epochs"]
