"""spgnet_keras: SPGNet (Semantic Prediction Guidance for Scene Parsing, ICCV 2019) in Keras 3."""

import importlib.util

# Importing the modules registers every serializable object, so a trained `.keras`
# checkpoint (model, losses, metric, optimizer, schedule) loads with safe_mode=True.
from spgnet_keras import layers, optimizers, schedules
from spgnet_keras.models import PRESETS, SPGNet

# The layers and the model also run on Keras' JAX backend (forward passes, `fit` with Keras
# losses: tests/models/test_backends.py, benchmarks/gpu_speed.py); the losses, metrics,
# data pipeline, training, evaluation and export are built on TensorFlow.
if importlib.util.find_spec("tensorflow") is not None:
    from spgnet_keras import losses, metrics

__version__ = "0.1.0"

__all__ = ["PRESETS", "SPGNet", "layers", "losses", "metrics", "optimizers", "schedules", "__version__"]
