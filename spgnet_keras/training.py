"""Training SPGNet with `model.fit`: strategy, model, data, compile and callbacks (Sec 4.2)."""

import dataclasses
import json
from pathlib import Path

import keras

from spgnet_keras.callbacks import (
    AtomicBackup,
    AtomicCheckpoint,
    StopOnNonFiniteLoss,
    TrainingDivergedError,
    load_backup_weights,
    read_backup,
    write_text_atomically,
)
from spgnet_keras.config import PRECISIONS, config_to_dict
from spgnet_keras.config_checks import check_values
from spgnet_keras.data.masks import MaskStyle
from spgnet_keras.data.report import DataReport, describe_data
from spgnet_keras.data.sources import DATA_RECORD, FolderNaming, ResolvedData, data_record, resolve_data
from spgnet_keras.data.spec import DatasetSpec
from spgnet_keras.distribution import (  # noqa: F401  (re-exported: spgnet_keras.training's API)
    MULTI_WORKER_VERIFIED_KERAS,
    UnverifiedKerasError,
    check_batch_divides,
    check_keras_verified_for_multi_worker,
    fit_scope,
    is_keras_distribution,
    is_multi_worker,
    make_strategy,
    patch_fit_for_multi_worker,
    process_part,
    replicas_in_sync,
)
from spgnet_keras.errors import InvalidInputError, SPGNetError
from spgnet_keras.models.presets import preset_arguments
from spgnet_keras.models.spgnet import PREDICTION, SPGNet
from spgnet_keras.recipe import recipe_compile_arguments  # TensorFlow-free; also this module's API
from spgnet_keras.run_folder import run_folder_lock

FINISHED_FILE = "finished.json"


class RunFinished(SPGNetError):
    """`train` was asked for no more epochs than its output folder's run already finished."""


def set_precision(policy):
    """Global dtype policy; SPGNet keeps its logits (and the losses) in float32."""
    if policy not in PRECISIONS:
        raise InvalidInputError(f"`precision` must be one of {PRECISIONS}, got {policy!r}.")
    keras.mixed_precision.set_dtype_policy(policy)


def build_model(config, num_classes, crop_size=None, class_names=None, palette=None):
    """SPGNet from a `ModelConfig` (preset + argument overrides, or a saved SPGNet in
    `weights` re-headed for `num_classes`) and optional backbone weights; it keeps the data's
    `class_names` and `palette` in its config.

    With the training `crop_size` known, the model pools crop-sized at test time
    (`test_pooling="crop"`, In-Place ABN's test-time pooling; training pools globally):
    on CamVid val it scored higher than global pooling (docs/benchmarks.md, "Test-time
    pooling"). `model.arguments.test_pooling: global` keeps global pooling.
    """
    arguments = dict(config.arguments) if config.weights else {**preset_arguments(config.preset), **config.arguments}
    if crop_size is not None and "test_pooling" not in arguments:
        arguments.update(test_pooling="crop", test_pooling_crop=[int(side) for side in crop_size])
    classes = {key: value for key, value in (("class_names", class_names), ("palette", palette)) if value is not None}
    if config.weights:
        model = SPGNet.from_preset(config.weights, num_classes=num_classes, **classes, **arguments)
    else:
        model = SPGNet(num_classes=num_classes, **classes, **arguments)
    if config.backbone_weights:
        from spgnet_keras.models.imagenet import load_backbone_weights

        load_backbone_weights(model, config.backbone_weights)
    return model


def describe_model(config, model):
    """One line: what `build_model` built."""
    stages = " + ".join(model.stage_backbones)
    start = (f"fine-tuned from {config.weights}" if config.weights else
             f"preset {config.preset}" + (f", backbone weights {config.backbone_weights}" if config.backbone_weights
                                          else ", random initialisation"))
    return (f"SPGNet {stages}, decoder {model.decoder_channels}, guidance {model.guidance}, "
            f"{model.num_classes} classes ({start}; {model.count_params():,} parameters)")


@dataclasses.dataclass
class PreparedData:
    """A `DataConfig` read: the files (`resolved`), the classes (`spec`) and the dataset check
    with the class shares (`report`, None when `data.validate` is false and the classes are known).

    Example:

    ```python
    prepared = prepare_data(load_config("spgnet_keras/configs/camvid_cpu.yaml").data)
    print(prepared.spec.class_names, len(prepared.resolved.train_pairs))
    ```
    """

    resolved: ResolvedData
    spec: DatasetSpec
    report: DataReport | None

    def record(self):
        """What a run folder's `data.json` keeps: the split, the classes and the mask style, so
        that `spgnet evaluate --model RUN/...` reads the same validation data the same way."""
        return data_record(self.resolved, self.spec, None if self.report is None else self.report.to_dict())


def resolve_config_data(data_config, splits="both"):
    """`resolve_data` of the fields of a `DataConfig` (`splits="val"`: the validation part only)."""
    if data_config.root is None and data_config.images is None and data_config.train_list is None and \
            data_config.val_images is None:
        raise InvalidInputError(f"data.root is required for dataset {data_config.dataset!r} (or give the folders "
                         "themselves: --images DIR --masks DIR, data.images / data.masks).")
    naming = FolderNaming(data_config.image_suffix, data_config.mask_suffix, data_config.image_prefix,
                          data_config.mask_prefix, data_config.recursive)
    style = MaskStyle(mask_format=data_config.mask_format, reduce_zero_label=data_config.reduce_zero_label,
                      label_map=data_config.label_map)
    return resolve_data(
        data_config.dataset, data_config.root, images=data_config.images, masks=data_config.masks,
        val_images=data_config.val_images, val_masks=data_config.val_masks, train_list=data_config.train_list,
        val_list=data_config.val_list, val_fraction=data_config.val_fraction, split_seed=data_config.split_seed,
        train_split=data_config.train_split, val_split=data_config.val_split, naming=naming,
        classes=data_config.classes, num_classes=data_config.num_classes, style=style, splits=splits)


def prepare_data(data_config):
    """The `PreparedData` of a `DataConfig`: pairs found in place, the dataset check (every
    file read once, with the pipeline's decoder) and the classes (counted in the masks when
    nothing names them)."""
    resolved = resolve_config_data(data_config)
    report = None
    if data_config.validate or resolved.spec is None:
        report = describe_data(resolved.train_pairs, resolved.val_pairs, resolved.spec, resolved.classes_source,
                               **resolved.dataset_arguments())
    return PreparedData(resolved, report.spec if report is not None else resolved.spec, report)


def datasets_of(prepared, data_config, seed, global_batch_size, val_batch_size=1, skip_batches=0,
                whole_val_batches=False):
    """(train, val) `tf.data` pipelines of prepared data (see `make_datasets`; `whole_val_batches`:
    drop a last validation batch smaller than `val_batch_size`)."""
    from spgnet_keras.data import make_eval_dataset, make_train_dataset

    resolved = prepared.resolved
    common = dict(num_classes=prepared.spec.num_classes, validate=False, mask_style=resolved.style,
                  base_table=resolved.base_table)
    train = make_train_dataset(
        resolved.train_pairs, batch_size=global_batch_size, crop_size=tuple(data_config.crop_size), seed=seed,
        scales=data_config.scales, flip=data_config.flip, repeat=True, skip_batches=skip_batches, **common,
    )
    # Whole images: SPGNet pads them to a multiple of 32 itself (multiscale.pads_itself).
    val = make_eval_dataset(resolved.val_pairs, batch_size=val_batch_size, drop_remainder=whole_val_batches, **common)
    if data_config.val_max_images:
        val = val.take(-(-data_config.val_max_images // val_batch_size))
    return train, val


def make_datasets(data_config, seed, global_batch_size, val_batch_size=1, skip_batches=0):
    """(train, val, DatasetSpec, num_classes) tf.data pipelines for a `DataConfig`.

    `val_batch_size` should be the number of replicas in sync, so that every replica
    gets an image of each validation batch (with a global batch of 1, all replicas but
    one get an empty batch, which oneDNN's CPU Conv2D mis-shapes: evaluation crashes).
    `data.val_max_images` is then rounded up to whole batches. `skip_batches`: the
    training stream starts after that many batches (a resumed run; see `make_train_dataset`).
    """
    prepared = prepare_data(data_config)
    train, val = datasets_of(prepared, data_config, seed, global_batch_size, val_batch_size, skip_batches)
    return train, val, prepared.spec, prepared.spec.num_classes


def run_datasets(prepared, config, strategy, start_epoch):
    """(train, val) pipelines of a run on `strategy`: one validation image per replica a batch
    (whole batches only under a `keras.distribution`, which splits every batch evenly), and each
    process's part of every batch of a multi-process `keras.distribution`."""
    replicas = replicas_in_sync(strategy)
    # The training stream is a deterministic function of the seed; a resumed run starts it
    # after the batches the completed epochs consumed (skipped before decoding), so it sees
    # the same batches as an uninterrupted one.
    train, val = datasets_of(prepared, config.data, config.run.seed, config.data.batch_size, val_batch_size=replicas,
                             skip_batches=start_epoch * config.run.steps_per_epoch,
                             whole_val_batches=is_keras_distribution(strategy))
    return process_part(train, config.data.batch_size, strategy), process_part(val, replicas, strategy)


def data_plan(prepared, data_config):
    """The lines `spgnet train` prints about its data before the first step."""
    resolved = prepared.resolved
    where = data_config.images or data_config.train_list
    where = data_config.root if where is None else (Path(data_config.root) / where if data_config.root else where)
    naming = FolderNaming(data_config.image_suffix, data_config.mask_suffix, data_config.image_prefix,
                          data_config.mask_prefix).describe()
    lines = [f"data: {resolved.dataset} {where}" + (f" ({naming})" if naming else ""),
             f"  validation: {resolved.val_source}",
             f"  masks: {resolved.style.mask_format}" + (", reduce_zero_label" if resolved.style.reduce_zero_label else "")
             + (f", label map {json.dumps(resolved.style.label_map)[1:-1]}" if resolved.style.label_map else "")]
    if prepared.report is not None:
        lines += ["  " + line for line in prepared.report.format().splitlines()]
    else:
        lines.append(f"  {len(resolved.train_pairs)} training and {len(resolved.val_pairs)} validation pairs "
                     f"(data check skipped: data.validate is false); classes: {', '.join(prepared.spec.class_names)}")
    return lines


def resumed_epoch(backup_dir):
    """The epoch a run resumes at from its backup (0 when there is none)."""
    return read_backup(backup_dir).epoch


def make_callbacks(out_dir, monitor=f"val_{PREDICTION}_miou"):
    """Non-finite-loss guard, atomic checkpoints, BackupAndRestore, CSV and TensorBoard logs.

    Backups are written at every epoch end (shorten `steps_per_epoch` for finer ones):
    the backup restores weights, optimizer state (so the learning-rate schedule's step) and
    the epoch, but not a position inside an epoch.
    """
    out_dir = Path(out_dir)
    guard = StopOnNonFiniteLoss()
    checkpoint = AtomicCheckpoint(out_dir / "checkpoints", guard=guard, monitor=monitor)
    return [
        guard,
        AtomicBackup(out_dir / "backup", guard, restore=False),  # `train` restores before it writes
        checkpoint,
        keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(out_dir / "tensorboard"), write_graph=False, profile_batch=0),
    ], guard, checkpoint


def finished_run(out_dir):
    """The record `train` leaves in `out_dir` when a run ends (None if none has)."""
    path = Path(out_dir) / FINISHED_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def train(config, log=print):
    """Runs an `ExperimentConfig`: returns (model, history dict, checkpoint callback).

    Before the first step it reads the data (every pair checked once), builds the model and
    prints (through `log`) what it trains and where it writes; the run folder records the
    config (`config.json`) and the data (`data.json`: both splits, the classes, the mask
    style), which `spgnet evaluate --model <out_dir>/checkpoints/best.keras` reads back.

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
    check_values(config)
    out_dir = Path(config.run.out_dir)
    finished = finished_run(out_dir)
    if finished is not None and config.run.epochs <= finished["epochs"]:
        raise RunFinished(
            f"The run in {out_dir} already finished {finished['epochs']} epochs; its checkpoints are kept. "
            f"To train longer, ask for more epochs (--epochs {finished['epochs'] * 2}; run.epochs in a config); "
            "to start again, choose another output folder (--out DIR; run.out_dir)."
        )
    with run_folder_lock(out_dir):
        return _train_locked(config, out_dir, finished, log)


def _train_locked(config, out_dir, finished, log):
    """`train` while it holds the run folder's lock: nothing in the folder changes until the
    data are read, the model is built and the run's earlier state (backup or finished
    checkpoint) has loaded into it."""
    strategy = make_strategy(config.run.strategy)  # first: a JAX process joins the others before it computes
    check_batch_divides(config.data.batch_size, strategy)
    set_precision(config.run.precision)
    keras.utils.set_random_seed(config.run.seed)
    backup = read_backup(out_dir / "backup")
    start_epoch = backup.epoch
    continuing = finished is not None and start_epoch < finished["epochs"]
    if continuing:
        start_epoch = finished["epochs"]
    prepared = prepare_data(config.data)
    loss_config = with_class_weights(config.loss, prepared)
    train_data, val_data = run_datasets(prepared, config, strategy, start_epoch)
    spec = prepared.spec
    with strategy.scope():
        model = build_model(config.model, spec.num_classes, crop_size=config.data.crop_size,
                            class_names=spec.class_names, palette=spec.palette)
        arguments = recipe_compile_arguments(model, config.optimizer, loss_config, config.max_steps)
        model.compile(**arguments, jit_compile=jit_compile(config.run))
    if continuing:
        checkpoint_path = out_dir / "checkpoints" / "latest.keras"
        continue_finished_run(model, strategy, checkpoint_path, finished, config)
    elif backup.weights is not None:
        restore_backup(model, strategy, backup, out_dir)
        log(f"resuming: epoch {start_epoch + 1} from the backup {backup.weights} (epochs 1-{start_epoch} done)")
    for note in backup.remove_strays():
        log(f"resuming: {note}")
    for line in run_plan(config, prepared, model, loss_config):
        log(line)
    write_text_atomically(out_dir / "config.json", json.dumps(config_to_dict(config), indent=2))
    write_text_atomically(out_dir / DATA_RECORD, json.dumps(prepared.record(), indent=2))
    monitor = f"val_{PREDICTION}_miou"  # every SPGNet logs it (models/outputs.py: metric_name)
    callbacks, guard, checkpoint = make_callbacks(out_dir, monitor=monitor)
    patch_fit_for_multi_worker(model, strategy, train_data.element_spec)
    with fit_scope(strategy):
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
    write_text_atomically(out_dir / FINISHED_FILE, json.dumps(record, indent=2))
    return model, history.history, checkpoint


def jit_compile(run_config):
    """`model.compile`'s `jit_compile`: `run.jit_compile` (XLA) on TensorFlow; always on JAX,
    where False would run every step op by op in Python."""
    return True if keras.backend.backend() == "jax" else run_config.jit_compile


def plan(config):
    """What `train(config)` would do, as the lines it prints before the first step: the data
    are read and checked and the model is built, but nothing is trained or written."""
    check_values(config)
    prepared = prepare_data(config.data)
    loss_config = with_class_weights(config.loss, prepared)
    spec = prepared.spec
    model = build_model(config.model, spec.num_classes, crop_size=config.data.crop_size,
                        class_names=spec.class_names, palette=spec.palette)
    return run_plan(config, prepared, model, loss_config)


def with_class_weights(loss_config, prepared):
    """`loss_config` with `class_weights="auto"` replaced by the training split's
    median-frequency weights; ValueError for a list of the wrong length."""
    weights = loss_config.class_weights
    if weights == "auto":
        if prepared.report is None:
            raise InvalidInputError("loss.class_weights 'auto' counts the class pixels in the data check: set data.validate "
                             "to true.")
        return dataclasses.replace(loss_config, class_weights=prepared.report.median_frequency_weights())
    if weights is not None and len(weights) != prepared.spec.num_classes:
        raise InvalidInputError(f"loss.class_weights has {len(weights)} entries for the {prepared.spec.num_classes} classes "
                         f"of the data ({', '.join(prepared.spec.class_names)}).")
    return loss_config


def run_plan(config, prepared, model, loss_config):
    """The lines printed before the first step: model, classes, data, recipe, run folder."""
    spec = prepared.spec
    data, run = config.data, config.run
    lines = [f"model: {describe_model(config.model, model)}",
             f"classes: {', '.join(spec.class_names)}"]
    lines += data_plan(prepared, data)
    if loss_config.class_weights is not None:
        weights = ", ".join(f"{name} {weight:.3g}" for name, weight in zip(spec.class_names, loss_config.class_weights))
        lines.append(f"class weights{' (median frequency)' if config.loss.class_weights == 'auto' else ''}: {weights}")
    lines.append(f"training: {run.epochs} epochs x {run.steps_per_epoch} steps, batch {data.batch_size}, crops "
                 f"{data.crop_size[0]}x{data.crop_size[1]}, SGD lr {config.optimizer.learning_rate} (poly)")
    lines.append(f"run folder: {run.out_dir} (checkpoints/best.keras, checkpoints/latest.keras, history.csv, "
                 f"config.json, {DATA_RECORD})")
    return lines


def restore_backup(model, strategy, backup, out_dir):
    """Loads a run's backup into `model`; InvalidInputError, before the run folder changes, when
    the backup is of another model than this configuration builds."""
    try:
        with strategy.scope():
            load_backup_weights(model, backup.weights)
    except (ValueError, OSError) as error:
        recorded = out_dir / "config.json"
        raise InvalidInputError(
            f"The backup {backup.weights} does not load into the model this configuration builds "
            f"({str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}). The run in "
            f"{out_dir} was started with the configuration in {recorded}: train it with that configuration, or "
            "choose another output folder (--out DIR; run.out_dir) for this one. Nothing in the folder was changed."
        ) from None


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
