"""Weight copying between Keras models, and the one reader of `.keras` files.

Below the model class: nothing here imports `SPGNet`, so `spgnet.py`, `checkpoints.py`
and `imagenet.py` all build on this module without an import circle.

- `assign_pairs`: the one loop that copies variables (shapes checked, a clear error
  naming both variables otherwise).
- `copy_weights`: strict copy of every variable by path (same architecture).
- `copy_matching_weights`: lenient copy of what matches by path and shape; returns a
  `TransferReport` of what it copied, left as initialised and did not use.
- `read_saved_model`: `keras.saving.load_model(path, safe_mode=True, compile=False)` with
  clear errors; `load_model_weights`: a `.keras` checkpoint into a model, strictly.
"""

import dataclasses
import zipfile
from pathlib import Path

import keras
import numpy as np

from spgnet_keras.errors import InvalidInputError


@dataclasses.dataclass
class TransferReport:
    """What a weight transfer did.

    Args:
        copied: list of str. Target variable paths (or layer names) that were written.
        new: list of str. Target variable paths left as initialised.
        unused: list of str. Source variable paths (or layer names) not copied anywhere.

    Example:

    ```python
    report = copy_matching_weights(trained, fresh)
    print(report.summary())  # "180 copied, 5 left as initialised, 0 unused"
    ```
    """

    copied: list = dataclasses.field(default_factory=list)
    new: list = dataclasses.field(default_factory=list)
    unused: list = dataclasses.field(default_factory=list)

    def summary(self):
        """One line: how many were copied, left as initialised and unused."""
        return f"{len(self.copied)} copied, {len(self.new)} left as initialised, {len(self.unused)} unused"


def assign_pairs(pairs, where="the source"):
    """Assigns each source value to its target variable, after checking every shape.

    Args:
        pairs: list of (target variable, source variable or array, description) triples;
            the description names the pair in errors.
        where: str. What the values come from, for the message.

    Raises:
        InvalidInputError: a shape differs (nothing is assigned then); the message names
            the variables and both shapes.
    """
    values = []
    for target, source, description in pairs:
        value = source.numpy() if hasattr(source, "numpy") else np.asarray(source)
        if tuple(value.shape) != tuple(target.shape):
            raise InvalidInputError(
                f"Shape mismatch for {description}: the model has {tuple(target.shape)}, {where} has "
                f"{tuple(value.shape)}."
            )
        values.append(value)
    for (target, _, _), value in zip(pairs, values):
        target.assign(value)


def _match_by_path(source, target):
    """(pairs of same path and shape, target paths without a match, source paths not matched)."""
    by_path = {v.path: v for v in source.weights}
    pairs, new = [], []
    for variable in target.weights:
        match = by_path.pop(variable.path, None)
        if match is not None and tuple(match.shape) == tuple(variable.shape):
            pairs.append((variable, match, f"variable {variable.path!r}"))
        else:
            new.append(variable.path)
    return pairs, new, sorted(by_path)


def copy_weights(source, target, where="the source model", source_label="the source"):
    """Copies every variable of `source` into `target`, which must match it exactly.

    Args:
        source: `keras.Model`. Same variables (by path) and shapes as `target`.
        target: `keras.Model`. Written in place.
        where: str. What `source` is, for the messages (e.g. "Checkpoint m.keras").
        source_label: str. How the shape message names the source ("the checkpoint").

    Returns:
        `target`.

    Raises:
        InvalidInputError: a variable is missing on either side, or a shape differs; the
            message names the variable (and both shapes).
    """
    by_path = {v.path: v for v in source.weights}
    for variable in target.weights:
        match = by_path.get(variable.path)
        if match is None:
            raise InvalidInputError(f"{where} has no variable {variable.path!r}: it is another architecture.")
        if tuple(match.shape) != tuple(variable.shape):
            raise InvalidInputError(
                f"{where} does not fit this model: {variable.path!r} has shape {tuple(match.shape)} in "
                f"{source_label} and {tuple(variable.shape)} in the model."
            )
    extra = sorted(set(by_path) - {v.path for v in target.weights})
    if extra:
        raise InvalidInputError(f"{where} has {len(extra)} variables this model lacks, e.g. {extra[0]!r}.")
    assign_pairs([(variable, by_path[variable.path], f"variable {variable.path!r}") for variable in target.weights],
                 where)
    return target


def copy_matching_weights(source, target):
    """Copies every variable of `source` whose path and shape match one of `target`.

    Used to fine-tune a trained SPGNet on a dataset with another number of classes:
    everything that does not depend on the class count transfers; the classifiers and
    SPG's logits/attention convs (shapes with C) keep their fresh initialisation.

    Args:
        source: `keras.Model`.
        target: `keras.Model`. Written in place.

    Returns:
        A `TransferReport` of variable paths.
    """
    pairs, new, unused = _match_by_path(source, target)
    assign_pairs(pairs)
    return TransferReport([variable.path for variable, _, _ in pairs], new, unused)


def read_saved_model(path, what="model"):
    """The Keras model saved at `path` (`.keras`), not compiled, loaded with `safe_mode=True`.

    Args:
        path: str or `Path`. A `.keras` file.
        what: str. What the file is, for the messages ("model", "checkpoint", ...).

    Raises:
        FileNotFoundError: no file at `path`.
        InvalidInputError: not a `.keras` file, or Keras cannot read it (truncated, foreign).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what[0].upper() + what[1:]} file not found: {path}")
    if path.suffix.lower() != ".keras":
        raise InvalidInputError(f"The {what} must be a .keras file saved with model.save(), got {path}.")
    if not zipfile.is_zipfile(path):  # Keras would say "File not found" of a truncated archive
        raise InvalidInputError(
            f"Cannot read the {what} {path}: it is damaged or not a .keras archive (no complete zip directory; "
            f"{path.stat().st_size} bytes), e.g. cut short by a full disk or a copy that did not finish.")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # a truncated or foreign file: say which
        raise InvalidInputError(f"Cannot read the {what} {path}: {error}") from None


def load_model_weights(model, checkpoint):
    """Loads every weight of a `.keras` checkpoint into `model`, which must match it exactly.

    Unlike `model.load_weights`, a checkpoint of another architecture is reported by the
    first variable that differs (path and both shapes) or is missing.

    Args:
        model: `keras.Model`. Written in place.
        checkpoint: str or `Path`. A `.keras` file.

    Returns:
        `model`.
    """
    path = Path(checkpoint)
    return copy_weights(read_saved_model(path, "checkpoint"), model, where=f"Checkpoint {path}",
                        source_label="the checkpoint")
