"""ImageNet ResNet weights (keras-hub / keras-cv presets or saved backbones) into SPGNet encoders."""

import re
from pathlib import Path

import keras

from spgnet_keras.errors import InvalidInputError
from spgnet_keras.models.weights import TransferReport, assign_pairs, read_saved_model

# keras-hub presets (ResNet "v1.5", stride on the 3x3 conv, and explicit zero padding
# before every stride-2 conv and the max pool, like SPGNet's stacks: the features match
# exactly, see tests/models/test_keras_hub_parity.py).
KERAS_HUB_PRESETS = {
    "resnet18": "resnet_18_imagenet",
    "resnet50": "resnet_50_imagenet",
    "resnet101": "resnet_101_imagenet",
    "resnet152": "resnet_152_imagenet",
}
# keras-cv's only ImageNet ResNet ("v1": stride on the first 1x1 conv, 'same' padding at
# stride 2; kernels have the same shapes, so they load, but the network they were
# trained in differs slightly).
KERAS_CV_PRESETS = {"resnet50": "resnet50_imagenet"}

# keras-cv: v2_stack_0_block1_1_conv; keras-hub: stack0_block1_1_conv. 0 = shortcut.
_BLOCK_LAYER = re.compile(r"^(?:v2_)?stack_?(\d+)_block(\d+)_(\d)_(conv|bn)$")
_STEM_LAYER = re.compile(r"^conv1_(conv|bn)$")


def spgnet_layer_name(source_name, stage, block_offset=0):
    """The SPGNet encoder layer of stage `stage` matching a keras-cv/keras-hub ResNet layer."""
    match = _STEM_LAYER.match(source_name)
    if match:
        return f"stage{stage}_stem_{match.group(1)}" if stage == 1 else None
    match = _BLOCK_LAYER.match(source_name)
    if not match:
        return None
    stack, block, index, kind = match.groups()
    role = "shortcut_" if index == "0" else ""
    suffix = kind if index == "0" else f"{kind}{index}"
    return f"stage{stage}_stack{int(stack) + 1}_block{int(block) + block_offset}_{role}{suffix}"


def _block_offset(source):
    """keras-cv numbers blocks from 1, keras-hub from 0 in some versions: normalise to 1."""
    indices = [int(m.group(2)) for m in map(_BLOCK_LAYER.match, (l.name for l in source.layers)) if m]
    return 1 - min(indices) if indices else 0


def load_backbone_weights(model, source, stages=None):
    """Copies ResNet weights into the encoder of each SPGNet stage.

    Args:
        model: `SPGNet`. Written in place.
        source: str, `Path` or `keras.Model`. "imagenet" (keras-hub / keras-cv presets:
            they download from Kaggle, so they need a network; otherwise a clear error
            says to pass a file), a path to a `.keras` file holding a keras-cv or
            keras-hub `ResNetBackbone` (or any model with their layer names), or such a
            model object.
        stages: list of int. 1-based stages to fill (default: every stage).

    Returns:
        A `TransferReport` (SPGNet layer names copied; source layers unused).

    Raises:
        InvalidInputError: unreadable file, no matching layer, or a shape mismatch
            (naming the layer and both shapes).
    """
    stages = list(stages) if stages is not None else list(range(1, len(model.stage_backbones) + 1))
    report = TransferReport()
    for stage in stages:
        backbone = model.stage_backbones[stage - 1]
        resnet = _resolve_source(source, backbone)
        offset = _block_offset(resnet)
        for layer in resnet.layers:
            if not layer.weights:
                continue
            target_name = spgnet_layer_name(layer.name, stage, offset)
            if target_name is None:
                report.unused.append(layer.name)
                continue
            try:
                target = model.get_layer(target_name)
            except ValueError:
                raise InvalidInputError(
                    f"Source layer {layer.name!r} has no counterpart {target_name!r} in this SPGNet: "
                    f"is the source a {backbone} ResNet?"
                ) from None
            if len(target.weights) != len(layer.weights):
                raise InvalidInputError(f"Layer {target_name!r} has {len(target.weights)} variables, the source "
                                        f"layer {layer.name!r} {len(layer.weights)}.")
            pairs = [(variable, value, f"layer {target_name!r}") for variable, value in zip(target.weights,
                                                                                          layer.weights)]
            assign_pairs(pairs, where=f"the source layer {layer.name!r}")
            report.copied.append(target_name)
    if not report.copied:
        raise InvalidInputError(f"No ResNet layer of {source!r} matched the SPGNet encoder.")
    return report


def _resolve_source(source, backbone):
    if isinstance(source, keras.Model):
        return source
    if source == "imagenet":
        return _imagenet_backbone(backbone)
    path = Path(source)
    if not path.is_file():
        raise InvalidInputError(f"Backbone weights file {path} does not exist.")
    return read_saved_model(path, "backbone weights")


def _imagenet_backbone(backbone):
    """keras-hub preset, else keras-cv preset; a clear error when neither can be had."""
    attempts = []
    if backbone in KERAS_HUB_PRESETS:
        try:
            import keras_hub

            return keras_hub.models.ResNetBackbone.from_preset(KERAS_HUB_PRESETS[backbone])
        except Exception as error:  # ImportError, or no network to Kaggle
            attempts.append(f"keras_hub preset {KERAS_HUB_PRESETS[backbone]!r}: {type(error).__name__}: {error}")
    if backbone in KERAS_CV_PRESETS:
        try:
            import keras_cv

            return keras_cv.models.ResNetBackbone.from_preset(KERAS_CV_PRESETS[backbone])
        except Exception as error:
            attempts.append(f"keras_cv preset {KERAS_CV_PRESETS[backbone]!r}: {type(error).__name__}: {error}")
    if not attempts:
        raise InvalidInputError(f"No ImageNet preset is published for {backbone} in keras-hub or keras-cv.")
    raise InvalidInputError(
        f"Could not load ImageNet weights for {backbone} (the presets download from Kaggle). "
        "Save the backbone on a machine with network access "
        "(e.g. keras_hub.models.ResNetBackbone.from_preset(...).save('resnet.keras')) and pass "
        "backbone_weights='resnet.keras' (keras-hub presets need `pip install keras-hub`). Tried: "
        + "; ".join(attempts)
    )
