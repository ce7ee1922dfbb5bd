"""Serializable Keras layers of SPGNet."""

from spgnet_keras.layers.cross_stage import CrossStageAggregation
from spgnet_keras.layers.excitation import GatherExciteTransition, SqueezeExciteTransition, StageTransition
from spgnet_keras.layers.pooling import ContextPooling
from spgnet_keras.layers.residual import BottleneckBlock
from spgnet_keras.layers.resize import CropLike, PadToMultiple, ResizeLike
from spgnet_keras.layers.spg import SemanticPredictionGuidance
from spgnet_keras.layers.upsample import UpsampleModule

__all__ = [
    "BottleneckBlock",
    "ContextPooling",
    "CropLike",
    "CrossStageAggregation",
    "GatherExciteTransition",
    "PadToMultiple",
    "ResizeLike",
    "SemanticPredictionGuidance",
    "SqueezeExciteTransition",
    "StageTransition",
    "UpsampleModule",
]
