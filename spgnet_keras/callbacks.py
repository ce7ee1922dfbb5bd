"""Training callbacks that never lose a good checkpoint."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from pathlib import Path

import keras

from spgnet_keras.errors import SPGNetError
from spgnet_keras.output_files import remove_quietly, replace_atomically


class CheckpointWriteError(SPGNetError, OSError):
    """A checkpoint could not be written; the previous one is intact."""


class TrainingDivergedError(SPGNetError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first non-finite batch loss and remembers the step.

    Unlike `keras.callbacks.TerminateOnNaN`, the step is recorded (`bad_step`) so the
    caller can report it, and `AtomicCheckpoint` refuses to save after it.

    Example:

    ```python
    guard = StopOnNonFiniteLoss()
    model.fit(train, epochs=2, callbacks=[guard, AtomicCheckpoint("run/checkpoints", guard)])
    if guard.bad_step is not None:
        print(f"the loss became {guard.bad_value} at step {guard.bad_step}")
    ```
    """

    def __init__(self):
        super().__init__()
        self.bad_step = None
        self.bad_value = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.bad_step = int(self.model.optimizer.iterations.numpy())
            self.bad_value = float(loss)
            self.model.stop_training = True


BACKUP_METADATA = "training_metadata.json"
"""The backup's record: `{"epoch": next epoch, "weights": file name}`, written last, atomically."""


@dataclasses.dataclass(frozen=True)
class Backup:
    """What a run folder's backup holds: the epoch to resume at, its weights file (None when
    there is none), and the half-written files of a write that did not finish (`strays`).

    Example:

    ```python
    backup = read_backup("runs/camvid/backup")
    for note in backup.remove_strays():
        print(note)
    model.fit(train, epochs=10, initial_epoch=backup.epoch)
    ```
    """

    epoch: int
    weights: Path | None
    strays: tuple = ()

    def remove_strays(self) -> list[str]:
        """Deletes the half-written files; returns a sentence for each."""
        for stray in self.strays:
            remove_quietly(stray)
        return [f"removed {stray}, left by a backup write that did not finish" for stray in self.strays]


def read_backup(backup_dir) -> Backup:
    """The last complete backup in `backup_dir` (nothing is changed on disk).

    Every backup is written under a temporary name, moved into place, and only then named in
    `training_metadata.json` (also replaced atomically), so the record always points to a
    complete file; temporary files left by a failed or killed write are listed in `strays`.
    A backup written by Keras' own `BackupAndRestore` (`latest.weights.h5`) is read too.
    """
    backup_dir = Path(backup_dir)
    strays = tuple(sorted(backup_dir.glob(".tmp-*"))) if backup_dir.is_dir() else ()
    metadata = backup_dir / BACKUP_METADATA
    if not metadata.is_file():
        return Backup(0, None, strays)
    try:
        record = json.loads(metadata.read_text())
        epoch = int(record["epoch"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointWriteError(f"The backup record {metadata} is unreadable ({error}); move the folder "
                                   f"{backup_dir} away to train from the start.") from None
    weights = backup_dir / record.get("weights", "latest.weights.h5")
    return Backup(epoch, weights if weights.is_file() else None, strays)


class AtomicBackup(keras.callbacks.Callback):
    """Backs up weights and optimizer state at each epoch end so that an interrupted run resumes.

    Unlike `keras.callbacks.BackupAndRestore`, which overwrites `latest.weights.h5` in place
    (a full disk or a SIGTERM during the write leaves a file no later run can load), each
    backup (a `.keras` archive: weights and optimizer state, written through Python's file
    I/O rather than HDF5's, which leaves a broken file open after a failed write) goes to a
    temporary file that replaces the previous one only once complete, and a
    failed write raises `CheckpointWriteError` naming the file and the cause, the previous
    backup intact. Nothing is backed up after `guard` has seen a non-finite loss, and the
    backup is deleted when training ends normally. The epoch to resume at is read by the
    caller (`read_backup`) and passed to `fit(initial_epoch=...)`.

    Args:
        backup_dir: str or Path. Folder of the backup.
        guard: StopOnNonFiniteLoss or None. No backup after the loss it watches diverged.
        restore: bool. Load the backup's weights and optimizer state when training begins
            (False when the caller has loaded them).

    Example:

    ```python
    backup = read_backup("run/backup")
    model.fit(train, epochs=10, initial_epoch=backup.epoch, callbacks=[AtomicBackup("run/backup")])
    ```
    """

    def __init__(self, backup_dir, guard=None, restore=True):
        super().__init__()
        self.backup_dir = Path(backup_dir)
        self.guard = guard
        self.restore = restore

    def _diverged(self):
        return self.guard is not None and self.guard.bad_step is not None

    def on_train_begin(self, logs=None):
        backup = read_backup(self.backup_dir)
        if self.restore and backup.weights is not None:
            load_backup_weights(self.model, backup.weights)

    def on_epoch_end(self, epoch, logs=None):
        if self._diverged():
            return
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch + 1:05d}.keras"  # a .keras archive: written through Python's file I/O
        target = self.backup_dir / name
        temporary = self.backup_dir / f".tmp-{name}"
        previous = read_backup(self.backup_dir)
        failure = None
        try:
            self.model.save(str(temporary), overwrite=True)
            os.replace(temporary, target)
            write_text_atomically(self.backup_dir / BACKUP_METADATA, json.dumps({"epoch": epoch + 1, "weights": name}))
        except (OSError, RuntimeError, ValueError) as error:
            failure = _cause(error)
        if failure is not None:
            remove_quietly(temporary)
            kept = (f"the previous backup ({previous.weights.name}, epoch {previous.epoch}) is intact"
                    if previous.weights is not None else "there was no earlier backup")
            raise CheckpointWriteError(f"Could not write the backup {target}: {failure}; {kept}.")
        for old in [*self.backup_dir.glob("*.keras"), *self.backup_dir.glob("*.weights.h5")]:
            if old.name != name:
                remove_quietly(old)

    def on_train_end(self, logs=None):
        if not self._diverged() and self.backup_dir.is_dir():
            shutil.rmtree(self.backup_dir, ignore_errors=True)


def load_backup_weights(model, path):
    """Loads a backup's weights and optimizer state into a compiled `model`."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(str(path))


def write_text_atomically(path, text):
    """Writes `text` to `path` through a temporary file in the same folder + `os.replace`."""
    replace_atomically(path, lambda temporary: Path(temporary).write_text(text))


def _cause(error):
    """What went wrong, in a few words: the system's message for an errno (h5py wraps "File too
    large" or "No space left on device" in a long HDF5 message), else the first line."""
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno)
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves the model as `.keras` at each epoch end, atomically.

    The file is written under a temporary name in the same folder and moved into place
    with `os.replace`, so a crash or a full disk never leaves a half-written `latest`.
    Nothing is saved once `guard` has seen a non-finite loss. With `monitor`, a second
    file keeps the best epoch (e.g. highest "val_prediction_miou"); its score is kept in
    `best.json` beside it, so a resumed or continued run replaces `best.keras` only with
    a better epoch.

    Args:
        directory: str. Folder of `latest.keras`, `best.keras` and `best.json`.
        guard: StopOnNonFiniteLoss or None. No save after the loss it watches diverged.
        monitor: str or None. Log key of the best epoch, e.g. "val_prediction_miou".
        mode: str. "max" or "min": whether a higher `monitor` value is better.

    Example:

    ```python
    checkpoint = AtomicCheckpoint("run/checkpoints", monitor="val_prediction_miou")
    model.fit(train, validation_data=val, epochs=3, callbacks=[checkpoint])
    best = keras.saving.load_model(checkpoint.best_path)
    ```
    """

    def __init__(self, directory, guard=None, monitor=None, mode="max"):
        super().__init__()
        self.directory = Path(directory)
        self.guard = guard
        self.monitor = monitor
        self.mode = mode
        self.best = None

    @property
    def latest_path(self):
        return self.directory / "latest.keras"

    @property
    def best_path(self):
        return self.directory / "best.keras"

    @property
    def best_record_path(self):
        return self.directory / "best.json"

    def on_train_begin(self, logs=None):
        for stray in sorted(self.directory.glob(".tmp-*")) if self.directory.is_dir() else ():
            remove_quietly(stray)  # a checkpoint write that was killed: the complete files are untouched
        if self.best is None and self.best_path.exists() and self.best_record_path.is_file():
            record = json.loads(self.best_record_path.read_text())
            if record.get("monitor") == self.monitor:
                self.best = record["value"]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.guard is not None and self.guard.bad_step is not None:
            return
        if not math.isfinite(float(logs.get("loss", 0.0))):
            return
        save_atomically(self.model, self.latest_path)
        value = logs.get(self.monitor) if self.monitor else None
        if value is not None and (self.best is None or (value > self.best) == (self.mode == "max")):
            self.best = value
            save_atomically(self.model, self.best_path)
            record = {"monitor": self.monitor, "value": float(value), "epoch": epoch + 1}
            write_text_atomically(self.best_record_path, json.dumps(record))


def save_atomically(model, path):
    """`model.save(path)` through a temporary file in the same folder + `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        replace_atomically(path, model.save, suffix=".keras")
    except (OSError, RuntimeError) as error:  # h5py and zipfile report a full disk as either
        kept = f"the previous {path.name} is intact" if path.exists() else "no earlier checkpoint existed"
        raise CheckpointWriteError(f"Could not write checkpoint {path}: {_cause(error)}; {kept}.") from error


