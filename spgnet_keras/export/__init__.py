"""Export of SPGNet models: TF Serving SavedModels (preprocessing inside the graph), ONNX
and TFLite (LiteRT) with a parity check against Keras.

See examples/serve_with_tf_serving.md for the served signatures and conventions.
"""

from spgnet_keras.export.portable import (
    ParityError,
    ParityReport,
    check_parity,
    export_onnx,
    export_tflite,
    missing_requirements,
)
from spgnet_keras.export.saved_model import export_saved_model
from spgnet_keras.export.serving import (
    CHANNELS_MESSAGE,
    DEFAULT_MAX_PIXELS,
    EMPTY_BATCH_MESSAGE,
    EMPTY_IMAGE_MESSAGE,
    INPUT_NAME,
    NOT_AN_IMAGE_MESSAGE,
    NOT_FINITE_MESSAGE,
    OUTPUT_CLASSES,
    OUTPUT_IMAGE_SIZES,
    OUTPUT_PROBABILITIES,
    PAD_CLASS,
    SIGNATURE_ENCODED,
    SIGNATURE_FLOAT,
    SIGNATURE_UINT8,
    SIGNATURES,
    TOO_LARGE_MESSAGE,
    Segmenter,
)

__all__ = [
    "CHANNELS_MESSAGE",
    "DEFAULT_MAX_PIXELS",
    "EMPTY_BATCH_MESSAGE",
    "EMPTY_IMAGE_MESSAGE",
    "INPUT_NAME",
    "NOT_AN_IMAGE_MESSAGE",
    "NOT_FINITE_MESSAGE",
    "OUTPUT_CLASSES",
    "OUTPUT_IMAGE_SIZES",
    "OUTPUT_PROBABILITIES",
    "PAD_CLASS",
    "ParityError",
    "ParityReport",
    "SIGNATURES",
    "SIGNATURE_ENCODED",
    "SIGNATURE_FLOAT",
    "SIGNATURE_UINT8",
    "TOO_LARGE_MESSAGE",
    "Segmenter",
    "check_parity",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
    "missing_requirements",
]
