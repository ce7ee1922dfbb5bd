"""spgnet_keras: SPGNet (Semantic Prediction Guidance for Scene Parsing, ICCV 2019) in Keras 3."""

# Importing the modules registers every serializable object, so a trained `.keras`
# checkpoint (model, losses, metric, optimizer, schedule) loads with safe_mode=True.
from spgnet_keras import layers, optimizers, schedules
from spgnet_keras.models import PRESETS, SPGNet

# The layers and the model also run on Keras' JAX backend (forward passes, `fit` with Keras
# losses: tests/models/test_backends.py, benchmarks/gpu_speed.py); the losses, metrics,
# data pipeline, training, evaluation and export are built on TensorFlow.
try:
    from spgnet_keras import losses, metrics
except ModuleNotFoundError as error:
    if error.name != "tensorflow":
        raise

__version__ = "0.1.0"

__all__ = ["PRESETS", "SPGNet", "layers", "losses", "metrics", "optimizers", "schedules", "__version__"]
