"""Inference graphs for serving: BatchNorm folded into the convolutions, reduced precision.

`fold_batchnorm(model)` returns an `SPGNet` built with `folded_batchnorm=True` (no
BatchNormalization layers; every conv has a bias) whose weights are the original ones with
each inference BatchNorm y = gamma * (x - mean) / sqrt(var + eps) + beta folded into the
convolution before it:

    kernel' = kernel * s,   bias' = (bias - mean) * s + beta,   s = gamma / sqrt(var + eps)

(s along the output channels). TensorFlow's grappler then fuses conv + bias (+ ReLU), and
the BatchNorm `Mul` + `AddV2` ops are gone from the served graph.

`with_precision(model, "bfloat16")` rebuilds an `SPGNet` under Keras' "bfloat16" dtype
policy (weights and activations in bfloat16). The layers SPGNet pins to float32 stay
float32: the "preprocessing" normalisation of the 0-255 input and the classifiers, the
logit upsampling and the crop, so the logits are float32.
"""


import keras
import numpy as np

from spgnet_keras.errors import InvalidInputError
from spgnet_keras.models.spgnet import SPGNet

PRECISIONS = ("float32", "bfloat16")


def fold_batchnorm(model):
    """An equivalent `SPGNet` with every BatchNorm folded into the convolution before it.

    Args:
        model: an `SPGNet` (already folded models are returned as they are).

    Returns:
        An `SPGNet` with the same inputs, output names and config except
        `folded_batchnorm=True`; its outputs equal `model(x, training=False)` up to float
        rounding. It saves and loads like any SPGNet (`safe_mode=True`).

    Raises:
        ValueError: `model` is not an `SPGNet`, or a BatchNorm has no convolution to fold into.
    """
    check_spgnet(model)
    if model.folded_batchnorm:
        return model
    folded = SPGNet.from_config({**model.get_config(), "folded_batchnorm": True})
    copy_folded_weights(model, folded)
    return folded


def with_precision(model, precision):
    """`model` for `precision` "float32" (itself) or "bfloat16" (rebuilt, same weights cast).

    Raises:
        ValueError: an unknown precision, or a model that is not an `SPGNet`.
    """
    if precision not in PRECISIONS:
        raise InvalidInputError(f"`precision` must be one of {PRECISIONS}, got {precision!r}.")
    if precision == "float32":
        return model
    check_spgnet(model)
    rebuilt = SPGNet.from_config({**model.get_config(), "dtype": "bfloat16"})
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def check_spgnet(model):
    if not isinstance(model, SPGNet):
        raise InvalidInputError(
            f"fold_batchnorm / with_precision take an SPGNet (spgnet_keras.SPGNet), got {type(model).__name__}."
        )


# === Weight copying ===


def copy_folded_weights(source, target):
    """Writes `source`'s weights into the folded `target` (same layer tree, BatchNorm -> Identity)."""
    folded = set()
    for source_layer, target_layer, siblings in paired_leaves(source, target):
        if isinstance(source_layer, keras.layers.BatchNormalization):
            continue
        batchnorm = following_batchnorm(source_layer, siblings)
        if batchnorm is None:
            target_layer.set_weights(source_layer.get_weights())
        else:
            target_layer.set_weights(folded_conv_weights(source_layer, batchnorm))
            folded.add(id(batchnorm))
    unused = [layer.name for layer in batchnorms(source) if id(layer) not in folded]
    if unused:
        raise InvalidInputError(f"BatchNorm layer(s) {unused} follow no convolution of the same name; cannot fold them.")


def paired_leaves(source, target):
    """(source layer, target layer, source siblings by name) for every weight-holding leaf layer,
    walking both layer trees by name."""
    source_children = children(source)
    target_children = children(target)
    for name, source_child in source_children.items():
        if name not in target_children:
            raise InvalidInputError(f"The folded model has no layer {name!r} inside {target.name!r}.")
        target_child = target_children[name]
        if children(source_child):
            yield from paired_leaves(source_child, target_child)
        elif source_child.weights:
            yield source_child, target_child, source_children


def children(layer):
    """Direct sub-layers of `layer` by name."""
    return {child.name: child for child in layer._flatten_layers(include_self=False, recursive=False)}


def batchnorms(model):
    layers = model._flatten_layers(include_self=False)
    return [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]


def following_batchnorm(conv, siblings):
    """The BatchNorm that follows `conv`: the sibling named like it with "conv" -> "bn"
    (the package's convention: `stage1_stem_conv` / `stage1_stem_bn`, `conv1` / `bn1`,
    `gather_conv1` / `gather_bn1`)."""
    if not isinstance(conv, keras.layers.Conv2D | keras.layers.DepthwiseConv2D):
        return None
    head, separator, tail = conv.name.rpartition("conv")
    if not separator:
        return None
    candidate = siblings.get(f"{head}bn{tail}")
    if not isinstance(candidate, keras.layers.BatchNormalization):
        return None
    channels = conv.kernel.shape[-1] * (conv.kernel.shape[-2] if isinstance(conv, keras.layers.DepthwiseConv2D) else 1)
    if candidate.moving_mean.shape[0] != channels or candidate.axis not in (-1, 3):
        raise InvalidInputError(f"BatchNorm {candidate.name!r} does not match the channels of {conv.name!r}.")
    return candidate


def folded_conv_weights(conv, batchnorm):
    """[kernel', bias'] of `conv` with `batchnorm` folded in (float64 arithmetic)."""
    kernel = np.asarray(conv.kernel.numpy(), np.float64)
    channels = batchnorm.moving_mean.shape[0]
    bias = np.asarray(conv.bias.numpy(), np.float64) if conv.use_bias and conv.bias is not None else np.zeros(channels)
    gamma = np.asarray(batchnorm.gamma.numpy(), np.float64) if batchnorm.scale else np.ones(channels)
    beta = np.asarray(batchnorm.beta.numpy(), np.float64) if batchnorm.center else np.zeros(channels)
    mean = np.asarray(batchnorm.moving_mean.numpy(), np.float64)
    variance = np.asarray(batchnorm.moving_variance.numpy(), np.float64)
    scale = gamma / np.sqrt(variance + batchnorm.epsilon)
    # Conv2D kernels are (h, w, in, out); DepthwiseConv2D (h, w, in, multiplier), out = in * multiplier.
    kernel = kernel * scale.reshape(kernel.shape[-2:] if isinstance(conv, keras.layers.DepthwiseConv2D) else (-1,))
    return [kernel.astype("float32"), ((bias - mean) * scale + beta).astype("float32")]
