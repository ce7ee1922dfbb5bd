"""SPGNet models, ResNet encoder stacks and presets.

Modules, from the bottom up (each imports only those above it in this list):
`presets`, `outputs`, `weights`, `resnet`, `graph`, `imagenet`, `checkpoints`, `spgnet`.
"""

from spgnet_keras.models.presets import ABLATIONS, PRESETS, ablation_arguments, preset_arguments
from spgnet_keras.models.spgnet import PREDICTION, PREPROCESSING, SPGNet, stage_output_name, with_preprocessing
from spgnet_keras.models.weights import TransferReport, copy_matching_weights, copy_weights

__all__ = [
    "ABLATIONS",
    "PREDICTION",
    "PREPROCESSING",
    "PRESETS",
    "SPGNet",
    "TransferReport",
    "ablation_arguments",
    "copy_matching_weights",
    "copy_weights",
    "preset_arguments",
    "stage_output_name",
    "with_preprocessing",
]
