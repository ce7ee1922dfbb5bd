"""SPGNet models, ResNet encoder stacks and presets."""

from spgnet_keras.models.presets import ABLATIONS, PRESETS, ablation_arguments, preset_arguments
from spgnet_keras.models.spgnet import PREDICTION, PREPROCESSING, SPGNet, stage_output_name, with_preprocessing

__all__ = [
    "ABLATIONS",
    "PREDICTION",
    "PREPROCESSING",
    "PRESETS",
    "SPGNet",
    "ablation_arguments",
    "preset_arguments",
    "stage_output_name",
    "with_preprocessing",
]
