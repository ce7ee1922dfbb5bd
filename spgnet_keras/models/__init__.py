"""SPGNet models, ResNet encoder stacks and presets."""

from spgnet_keras.models.presets import ABLATIONS, PRESETS, ablation_arguments, preset_arguments
from spgnet_keras.models.spgnet import PREDICTION, SPGNet, stage_output_name

__all__ = ["ABLATIONS", "PREDICTION", "PRESETS", "SPGNet", "ablation_arguments", "preset_arguments", "stage_output_name"]
