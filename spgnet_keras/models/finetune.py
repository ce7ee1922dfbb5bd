"""Fine-tuning: a trained SPGNet's weights into a model for another class count."""

import dataclasses

import keras
import numpy as np

from spgnet_keras.errors import InvalidInputError


@dataclasses.dataclass
class TransferReport:
    """What a weight transfer did: layer/variable names copied, left new, or unused."""

    copied: list
    new: list
    unused: list

    def summary(self):
        return f"{len(self.copied)} copied, {len(self.new)} left as initialised, {len(self.unused)} unused"


def transfer_matching_weights(source, target):
    """Copies every variable of `source` whose path and shape match one of `target`.

    Used to fine-tune a trained SPGNet on a dataset with another number of classes:
    everything that does not depend on the class count transfers; the classifiers and
    SPG's logits/attention convs (shapes with C) keep their fresh initialisation.
    """
    by_path = {v.path: v for v in source.weights}
    report = TransferReport([], [], [])
    for variable in target.weights:
        match = by_path.pop(variable.path, None)
        if match is not None and tuple(match.shape) == tuple(variable.shape):
            variable.assign(np.asarray(match))
            report.copied.append(variable.path)
        else:
            report.new.append(variable.path)
    report.unused = sorted(by_path)
    return report


def finetune_from(checkpoint, num_classes, **overrides):
    """A new SPGNet with `num_classes` classes initialised from a trained one.

    Args:
        checkpoint: path of a `.keras` SPGNet or the model itself.
        num_classes: classes of the new dataset.
        **overrides: other SPGNet arguments to change (e.g. `input_shape`).

    Returns:
        (model, TransferReport).
    """
    from spgnet_keras.models.checkpoints import read_spgnet
    from spgnet_keras.models.spgnet import SPGNet

    source = checkpoint if isinstance(checkpoint, keras.Model) else read_spgnet(checkpoint)
    if not isinstance(source, SPGNet):
        raise InvalidInputError(f"{checkpoint!r} is not an SPGNet model (got {type(source).__name__}).")
    config = {**source.get_config(), **overrides, "num_classes": num_classes}
    model = SPGNet.from_config(config)
    return model, transfer_matching_weights(source, model)
