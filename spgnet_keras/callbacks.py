"""Training callbacks that never lose a good checkpoint."""

import json
import math
import os
import tempfile
from pathlib import Path

import keras

from spgnet_keras.errors import SPGNetError


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


class GuardedBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that neither backs up nor deletes its backup after a NaN/Inf loss.

    Keras' callback would save the diverged weights at that epoch's end and delete the
    folder when `fit` returns, so re-running would start from scratch; here the last good
    backup stays and the same command resumes from it.

    Args:
        backup_dir: str. Folder of Keras' backup (`latest.weights.h5` and its metadata).
        guard: StopOnNonFiniteLoss. The callback that records a non-finite loss.
        **kwargs: Passed to `keras.callbacks.BackupAndRestore`.

    Example:

    ```python
    guard = StopOnNonFiniteLoss()
    callbacks = [guard, GuardedBackupAndRestore("run/backup", guard)]
    ```
    """

    def __init__(self, backup_dir, guard, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.guard = guard

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.bad_step is None:
            super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        if self.guard.bad_step is None:
            super().on_train_end(logs)


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
            self.best_record_path.write_text(json.dumps(record))


def save_atomically(model, path):
    """`model.save(path)` through a temporary file in the same folder + `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".keras", dir=path.parent)
    os.close(handle)
    try:
        model.save(temporary)
        os.replace(temporary, path)
    except OSError as error:
        _remove_quietly(temporary)
        kept = f"the previous {path.name} is intact" if path.exists() else "no earlier checkpoint existed"
        raise CheckpointWriteError(f"Could not write checkpoint {path}: {error}; {kept}.") from error
    except BaseException:
        _remove_quietly(temporary)
        raise


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass
