"""spgnet_keras: SPGNet (Semantic Prediction Guidance for Scene Parsing, ICCV 2019) in Keras 3."""

# Importing the modules registers every serializable object, so a trained `.keras`
# checkpoint (model, losses, metric, optimizer, schedule) loads with safe_mode=True.
# The model and the paper's recipe (losses, metric, optimizer, schedule) run on Keras'
# TensorFlow and JAX backends alike (tests/models/test_backends.py,
# tests/test_backend_agreement.py); the data pipeline, training, evaluation and export are
# built on TensorFlow.
from spgnet_keras import layers, losses, metrics, optimizers, schedules
from spgnet_keras.models import PRESETS, SPGNet

__version__ = "0.1.0"

__all__ = ["PRESETS", "SPGNet", "layers", "losses", "metrics", "optimizers", "schedules", "__version__"]
