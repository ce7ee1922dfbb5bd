"""spgnet_keras: SPGNet (Semantic Prediction Guidance for Scene Parsing, ICCV 2019) in Keras 3."""

from spgnet_keras import layers
from spgnet_keras.models import PRESETS, SPGNet

__version__ = "0.1.0"

__all__ = ["PRESETS", "SPGNet", "layers", "__version__"]
