"""Export of SPGNet models: TF Serving SavedModels (preprocessing inside the graph), ONNX
and TFLite (LiteRT, float32 or int8) with a parity check against Keras. Every export
serves the inference graph with BatchNorm folded into the convolutions (`fold_batchnorm`).

See examples/serve_with_tf_serving.md for the served signatures and conventions.
"""

from spgnet_keras.export.folding import PRECISIONS, fold_batchnorm, with_precision
from spgnet_keras.export.portable import (
    ParityError,
    ParityReport,
    check_parity,
    export_onnx,
    export_tflite,
    missing_requirements,
    open_runner,
)
from spgnet_keras.export.quantize import (
    QuantizationReport,
    calibration_images,
    export_int8_tflite,
    quantization_report,
    validation_pairs,
)
from spgnet_keras.export.saved_model import MAX_OUTPUT_PIXELS, export_saved_model
from spgnet_keras.export.serving import (
    CHANNELS_MESSAGE,
    DEFAULT_MAX_PIXELS,
    EMPTY_BATCH_MESSAGE,
    EMPTY_IMAGE_MESSAGE,
    ENCODED_RANK_MESSAGE,
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
    TENSOR_RANK_MESSAGE,
    TOO_LARGE_MESSAGE,
    Segmenter,
)

__all__ = [
    "CHANNELS_MESSAGE",
    "DEFAULT_MAX_PIXELS",
    "EMPTY_BATCH_MESSAGE",
    "EMPTY_IMAGE_MESSAGE",
    "ENCODED_RANK_MESSAGE",
    "INPUT_NAME",
    "MAX_OUTPUT_PIXELS",
    "NOT_AN_IMAGE_MESSAGE",
    "NOT_FINITE_MESSAGE",
    "OUTPUT_CLASSES",
    "OUTPUT_IMAGE_SIZES",
    "OUTPUT_PROBABILITIES",
    "PAD_CLASS",
    "PRECISIONS",
    "ParityError",
    "ParityReport",
    "QuantizationReport",
    "SIGNATURES",
    "SIGNATURE_ENCODED",
    "SIGNATURE_FLOAT",
    "SIGNATURE_UINT8",
    "TENSOR_RANK_MESSAGE",
    "TOO_LARGE_MESSAGE",
    "Segmenter",
    "calibration_images",
    "check_parity",
    "export_int8_tflite",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
    "fold_batchnorm",
    "missing_requirements",
    "open_runner",
    "quantization_report",
    "validation_pairs",
    "with_precision",
]
