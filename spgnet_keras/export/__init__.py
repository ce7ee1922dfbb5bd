"""Export of SPGNet models: TF Serving SavedModels (preprocessing inside the graph), ONNX
and TFLite (LiteRT, float32 or int8) with a parity check against Keras. Every export
serves the inference graph with BatchNorm folded into the convolutions (`fold_batchnorm`).

This package re-exports the public API: the export functions, their reports, `Segmenter`
(the served graph's body) and the names a client of the SavedModel needs (signatures,
input and output names, `PAD_CLASS`, the pixel limits). The error texts of the served
graph are in `spgnet_keras.export.serving` (`NOT_AN_IMAGE_MESSAGE`, ...).

See examples/serve_with_tf_serving.md for the served signatures and conventions.

Example:

```python
from spgnet_keras.export import export_saved_model

export_saved_model(model, "models/spgnet/1", scales=(0.75, 1.0, 1.25), flip=True)
```
"""

try:
    import tensorflow  # noqa: F401
except ModuleNotFoundError as missing:  # e.g. a JAX-only GPU machine
    raise ModuleNotFoundError(
        "spgnet_keras.export writes TensorFlow SavedModels and needs TensorFlow, which is not installed here: "
        "copy the trained .keras file to a machine with the package's default install and run "
        "`spgnet export MODEL.keras --out DIR/1` there (any Keras backend).", name="tensorflow") from missing

from spgnet_keras.export.folding import PRECISIONS, fold_batchnorm, with_precision
from spgnet_keras.export.openvino import export_openvino
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
    DEFAULT_MAX_PIXELS,
    INPUT_NAME,
    OUTPUT_CLASSES,
    OUTPUT_CLASSES_PNG,
    OUTPUT_IMAGE_SIZES,
    OUTPUT_PROBABILITIES,
    PAD_CLASS,
    SIGNATURE_ENCODED,
    SIGNATURE_FLOAT,
    SIGNATURE_PNG,
    SIGNATURE_UINT8,
    SIGNATURES,
    Segmenter,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "INPUT_NAME",
    "MAX_OUTPUT_PIXELS",
    "OUTPUT_CLASSES",
    "OUTPUT_CLASSES_PNG",
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
    "SIGNATURE_PNG",
    "SIGNATURE_UINT8",
    "Segmenter",
    "calibration_images",
    "check_parity",
    "export_int8_tflite",
    "export_onnx",
    "export_openvino",
    "export_saved_model",
    "export_tflite",
    "fold_batchnorm",
    "missing_requirements",
    "open_runner",
    "quantization_report",
    "validation_pairs",
    "with_precision",
]
