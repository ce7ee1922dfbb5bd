"""SPGNet's outputs: their names, the loss weights of deep supervision, the default loss and
metric, and the targets given to each output.

The one place for these rules: `stage_loss_weights` (used by `SPGNet.compile` and
`spgnet_keras.losses.deep_supervision_losses`) and `metric_name` / `default_metrics` (the
metric is logged as `prediction_miou` whatever the number of stages).
"""

from collections.abc import Mapping

import keras

from spgnet_keras.constants import DEFAULT_STAGE_WEIGHT, PREDICTION
from spgnet_keras.errors import InvalidInputError

MIOU = "miou"


def stage_output_name(stage):
    """Name of the deep-supervision output of stage `stage` (1-based, not the last): `"stage1"`, ..."""
    return f"stage{stage}"


def stage_loss_weights(output_names, stage_weight=DEFAULT_STAGE_WEIGHT, prediction_name=PREDICTION):
    """Loss weights of a deeply supervised model: 1 for the final output, `stage_weight` for the others.

    Args:
        output_names: list of str. The keys of the model's output dict.
        stage_weight: float or dict. Weight of every earlier-stage output, or a mapping
            from output name to weight (missing names get `DEFAULT_STAGE_WEIGHT`).
        prediction_name: str. The final output (weight 1.0).

    Returns:
        A dict keyed by output name.

    Raises:
        InvalidInputError: `prediction_name` is not an output, or a name is duplicated.
    """
    names = list(output_names)
    if prediction_name not in names:
        raise InvalidInputError(f"Output {prediction_name!r} not found in output names {names}.")
    if len(set(names)) != len(names):
        raise InvalidInputError(f"Duplicate output names: {names}.")
    weights = {}
    for name in names:
        if name == prediction_name:
            weights[name] = 1.0
        elif isinstance(stage_weight, Mapping):
            weights[name] = float(stage_weight.get(name, DEFAULT_STAGE_WEIGHT))
        else:
            weights[name] = float(stage_weight)
    return weights


def metric_name(output_names, metric=MIOU, output=PREDICTION):
    """The name to give a metric of output `output` so that Keras logs it as `f"{output}_{metric}"`.

    Keras prefixes a metric's name with its output's name only when the model has several
    outputs; a one-stage SPGNet has one. Naming the metric `f"{output}_{metric}"` there
    makes every SPGNet log `prediction_miou` (`val_prediction_miou`).

    Args:
        output_names: list of str. The model's output names.
        metric: str. The metric's own name.
        output: str. The output it measures.
    """
    return metric if len(list(output_names)) > 1 else f"{output}_{metric}"


def default_loss(ohem_threshold=None, ohem_min_kept=0):
    """`SPGNet.compile()`'s default loss: `spgnet_keras.losses.SegmentationCrossEntropy`,
    cross-entropy on logits with ignore label 255 (+OHEM), on every backend."""
    from spgnet_keras.losses import SegmentationCrossEntropy  # losses imports this module

    return SegmentationCrossEntropy(ohem_threshold=ohem_threshold, ohem_min_kept=ohem_min_kept)


def default_metric(num_classes, name=MIOU):
    """Mean IoU over the classes, ignore label 255, named `name`:
    `spgnet_keras.metrics.SegmentationMeanIoU`, on every backend."""
    from spgnet_keras.metrics import SegmentationMeanIoU

    return SegmentationMeanIoU(num_classes, name=name)


def default_metrics(output_names, num_classes):
    """`compile`'s `metrics` for an SPGNet: mean IoU on `"prediction"`, logged as `prediction_miou`.

    Args:
        output_names: list of str. The model's output names (`list(model.output)`).
        num_classes: int. Number of classes.
    """
    return {PREDICTION: [default_metric(num_classes, name=metric_name(output_names))]}


def targets_per_output(y, y_pred):
    """One mask for every output of a dict-output model; a dict of targets as it is."""
    if not isinstance(y_pred, dict) or isinstance(y, dict) or y is None:
        return y
    mask = drop_channel_axis(y)
    return {name: mask for name in y_pred}


def drop_channel_axis(mask):
    """(B, H, W, 1) -> (B, H, W); (B, H, W) unchanged (also when the rank is unknown)."""
    rank = mask.shape.rank if hasattr(mask.shape, "rank") else len(mask.shape)
    if rank is None:  # a TensorFlow trace with relaxed shapes (a second `fit` call)
        import tensorflow as tf  # only a TensorFlow tensor has an unknown rank

        shape = tf.shape(mask)
        return tf.reshape(mask, [shape[0], shape[1], shape[2]])
    if rank == 4 and mask.shape[-1] == 1:
        return keras.ops.squeeze(mask, axis=-1)
    return mask
