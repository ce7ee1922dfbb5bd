"""ONNX and TFLite (LiteRT) export of the bare network, with a parity check against Keras.

Unlike the SavedModel for TF Serving, these files hold only the network at one fixed
input shape: input `image`, float32 `[B, H, W, 3]` RGB in [0, 255] (the network's first
layer normalises it, as in Keras), H and W multiples of 32; output: the float32 logits
`[B, H, W, C]` of the selected model output. Decoding, padding and argmax are left to the
caller.

Runtimes: `onnxruntime` for ONNX, `ai_edge_litert` (or TensorFlow's `tf.lite`) for
TFLite. The converters are the ones behind `keras.Model.export`: tf2onnx for
`format="onnx"`, `tf.lite.TFLiteConverter` for `format="litert"`. An `SPGNet` is exported
with its BatchNorms folded into the convolutions (`spgnet_keras.export.fold_batchnorm`).
TFLite can be int8-quantized (`quantize="int8"`, see `spgnet_keras.export.quantize`).
"""

import dataclasses
import importlib
from pathlib import Path

import keras
import numpy as np

from spgnet_keras.constants import OUTPUT_STRIDE, PREDICTION
from spgnet_keras.errors import InvalidInputError, SPGNetError
from spgnet_keras.models.spgnet import check_takes_raw_images

ONNX_REQUIREMENTS = ("tf2onnx", "onnxruntime")
TFLITE_REQUIREMENTS = ("ai_edge_litert",)
OPENVINO_REQUIREMENTS = ("openvino", "nncf")
# File suffix -> format, for `check_parity` and `open_runner`.
SUFFIXES = {".onnx": "onnx", ".tflite": "tflite", ".xml": "openvino"}
DEFAULT_MIN_AGREEMENT = 0.999
QUANTIZATIONS = (None, "int8")


class ParityError(SPGNetError, AssertionError):
    """The exported model's argmax disagrees with Keras on too many pixels.

    Raised by `check_parity`; its message is the failing `ParityReport`.

    Example:

    ```python
    try:
        check_parity(model, "model.tflite")
    except ParityError as error:
        print(error)
    ```
    """


@dataclasses.dataclass(frozen=True)
class ParityReport:
    """Exported model vs Keras on the same inputs (what `check_parity` returns).

    Attributes:
        format: str. `"onnx"` or `"tflite"`.
        agreement: float. Fraction of pixels whose argmax is identical.
        max_abs_diff: float. Largest absolute difference of the logits.
        max_abs_logit: float. Largest absolute Keras logit, for scale.
        pixels: int. Pixels compared.

    Example:

    ```python
    report = check_parity(model, export_onnx(model, "model.onnx", input_shape=(1, 512, 1024, 3)))
    print(report)  # onnx: argmax identical on 100.0000% of ... pixels, ...
    ```
    """

    format: str
    agreement: float  # fraction of pixels whose argmax is identical
    max_abs_diff: float  # largest absolute difference of the logits
    max_abs_logit: float  # largest absolute Keras logit, for scale
    pixels: int

    def __str__(self):
        return (
            f"{self.format}: argmax identical on {100 * self.agreement:.4f}% of {self.pixels} pixels, "
            f"max |logit difference| {self.max_abs_diff:.3g} (max |logit| {self.max_abs_logit:.3g})"
        )


def missing_requirements(kind):
    """Names of the Python packages that `kind` ("onnx", "tflite" or "openvino") needs and lacks."""
    names = {"onnx": ONNX_REQUIREMENTS, "tflite": TFLITE_REQUIREMENTS, "openvino": OPENVINO_REQUIREMENTS}[kind]
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as error:  # a broken install counts as missing, with the reason
            missing.append(f"{name} ({type(error).__name__}: {error})")
    return missing


def export_onnx(model, path, input_shape, *, output=PREDICTION, opset=None):
    """Writes the network for a fixed `input_shape` as ONNX (via tf2onnx).

    Args:
        model: a Keras model (e.g. `SPGNet`) taking RGB 0-255 images.
        path: the `.onnx` file to write.
        input_shape: (height, width) or (batch, height, width, 3); batch defaults to 1.
        output: which output of the model to export ("prediction", "stage1", ...).
        opset: ONNX opset (None: tf2onnx's default).

    Returns:
        The `Path` written.
    """
    path = Path(path)
    if path.suffix != ".onnx":
        raise InvalidInputError(f"The ONNX file name must end in .onnx, got {str(path)!r}.")
    _require("onnx", ("tf2onnx",))
    network, spec = _single_output_network(model, input_shape, output)
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {} if opset is None else {"opset_version": opset}
    network.export(str(path), format="onnx", input_signature=[spec], verbose=False, **kwargs)
    return path


def export_tflite(model, path, input_shape, *, output=PREDICTION, quantize=None, calibration_images=None):
    """Writes the network for a fixed `input_shape` as a TFLite (LiteRT) flatbuffer.

    `model.export(format="litert")`, i.e. `tf.lite.TFLiteConverter` on a SavedModel of
    the network. Arguments as in `export_onnx`; `path` must end in `.tflite`.

    Args:
        quantize: None (float32) or "int8": post-training integer quantization with
            per-channel int8 weights and int8 activations calibrated on
            `calibration_images`; the input stays float32 RGB 0-255 and the output float32
            logits (quantize / dequantize ops inside), so callers do not change.
        calibration_images: float32 RGB 0-255 `[N, H, W, 3]` images of the exported
            height and width (the representative dataset), required for "int8".
    """
    path = Path(path)
    if path.suffix != ".tflite":
        raise InvalidInputError(f"The TFLite file name must end in .tflite, got {str(path)!r}.")
    if quantize not in QUANTIZATIONS:
        raise InvalidInputError(f"`quantize` must be one of {QUANTIZATIONS}, got {quantize!r}.")
    network, spec = _single_output_network(model, input_shape, output)
    converter_options = {}
    if quantize == "int8":
        converter_options = int8_converter_options(calibration_images, spec.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    network.export(str(path), format="litert", input_signature=[spec], verbose=False, **converter_options)
    return path


def int8_converter_options(calibration_images, shape):
    """TFLiteConverter settings for int8 post-training quantization (per-channel weights,
    the TFLite default) with `calibration_images` as the representative dataset."""
    import tensorflow as tf

    images = calibration_array(calibration_images, shape)

    def representative_dataset():
        for chunk in fixed_batches(images, int(shape[0])):
            yield [chunk]

    return {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": representative_dataset}


def calibration_array(calibration_images, shape):
    """The calibration images as float32 `[N, H, W, 3]` of the export `shape`, or InvalidInputError."""
    if calibration_images is None or len(calibration_images) == 0:
        raise InvalidInputError("int8 quantization needs calibration images (--calibration DIR).")
    images = np.asarray(calibration_images, dtype="float32")
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(shape[1:]):
        raise InvalidInputError(
            f"Calibration images have shape {images.shape}; the export takes (N, {', '.join(map(str, shape[1:]))})."
        )
    return images


def fixed_batches(images, batch):
    """`images` in batches of a fixed-batch input's size `batch`, the last one filled up with the first images."""
    images = np.asarray(images, dtype="float32")
    count = -(-len(images) // batch) * batch
    filled = np.concatenate([images, images[: count - len(images)]]) if count > len(images) else images
    return [filled[start : start + batch] for start in range(0, count, batch)]


def check_parity(model, path, images=None, *, output=PREDICTION, min_agreement=DEFAULT_MIN_AGREEMENT, seed=0):
    """Compares an exported `.onnx` / `.tflite` / OpenVINO `.xml` file with the Keras model.

    Args:
        model: the Keras model that was exported.
        path: the `.onnx`, `.tflite` or `.xml` file.
        images: float32 RGB 0-255 images `[B, H, W, 3]` of the exported shape; None
            draws uniform random images of that shape (`seed`).
        output: the model output that was exported.
        min_agreement: smallest accepted fraction of pixels with the same argmax.

    Returns:
        A `ParityReport`. Raises `ParityError` when the agreement is below
        `min_agreement`.
    """
    check_takes_raw_images(model)
    kind = file_format(path)
    runner = open_runner(path)
    if images is None:
        images = np.random.default_rng(seed).uniform(0, 255, runner.input_shape).astype("float32")
    images = np.asarray(images, dtype="float32")
    if tuple(images.shape) != tuple(runner.input_shape):
        raise InvalidInputError(f"`images` has shape {images.shape}; the {kind} model takes {tuple(runner.input_shape)}.")
    expected = model.predict(images, verbose=0)
    if isinstance(expected, dict):
        expected = expected[output]
    actual = runner(images)
    agreement = float(np.mean(np.argmax(actual, -1) == np.argmax(expected, -1)))
    report = ParityReport(
        format=kind,
        agreement=agreement,
        max_abs_diff=float(np.max(np.abs(actual - expected))),
        max_abs_logit=float(np.max(np.abs(expected))),
        pixels=int(np.prod(expected.shape[:-1])),
    )
    if agreement < min_agreement:
        raise ParityError(f"{report}; below the required {100 * min_agreement:.2f}%.")
    return report


def open_runner(path, num_threads=None):
    """A callable running an exported `.onnx` / `.tflite` / `.xml` (OpenVINO) file on a float32 batch of its input
    shape (`runner.input_shape`) and returning the logits; `runner.classes(batch)` returns the int32 class ids
    (for OpenVINO computed by the plugin). `num_threads` None: the runtime's default."""
    kind = file_format(path)
    if kind == "openvino":
        from spgnet_keras.export.openvino import OpenVinoRunner

        return OpenVinoRunner(path, num_threads)
    return _OnnxRunner(path, num_threads) if kind == "onnx" else _TFLiteRunner(path, num_threads)


def file_format(path):
    """"onnx", "tflite" or "openvino" from the file name, or InvalidInputError."""
    kind = SUFFIXES.get(Path(path).suffix)
    if kind is None:
        raise InvalidInputError(f"Cannot tell the format of {str(path)!r}: expected {' / '.join(SUFFIXES)}.")
    return kind


# === Internals ===


def _require(kind, names):
    missing = [m for m in missing_requirements(kind) if m.split(" ")[0] in names]
    if missing:
        raise ImportError(
            f"{kind} export/parity needs {', '.join(missing)}; install with `pip install {' '.join(names)}`."
        )


def _fixed_shape(input_shape):
    shape = tuple(input_shape)
    if len(shape) == 2:
        shape = (1, *shape, 3)
    if len(shape) != 4 or shape[-1] != 3:
        raise InvalidInputError(f"`input_shape` must be (height, width) or (batch, height, width, 3), got {input_shape!r}.")
    for value in shape:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise InvalidInputError(f"`input_shape` must hold positive integers, got {input_shape!r}.")
    if shape[1] % OUTPUT_STRIDE or shape[2] % OUTPUT_STRIDE:
        raise InvalidInputError(
            f"Height and width must be multiples of {OUTPUT_STRIDE} for a fixed-shape export, got {input_shape!r}."
        )
    return tuple(int(v) for v in shape)


def _single_output_network(model, input_shape, output):
    """A functional model with the single output `output`, and its input spec."""
    import tensorflow as tf

    from spgnet_keras.export.folding import fold_batchnorm
    from spgnet_keras.models.spgnet import SPGNet

    check_takes_raw_images(model)
    shape = _fixed_shape(input_shape)
    if isinstance(model, SPGNet):
        model = fold_batchnorm(model)
    outputs = model.output
    if isinstance(outputs, dict):
        if output not in outputs:
            raise InvalidInputError(f"`output` must be one of the model's outputs {sorted(outputs)}, got {output!r}.")
        outputs = outputs[output]
    elif output != PREDICTION:
        raise InvalidInputError(f"The model has a single output; `output` must be 'prediction', got {output!r}.")
    network = keras.Model(model.input, outputs, name=f"{model.name}_{output}")
    return network, tf.TensorSpec(shape, tf.float32, name="image")


class _Runner:
    """What every runner of `open_runner` has beyond its call (which returns the logits)."""

    def classes(self, images):
        """The int32 class ids `[B, H, W]` of a float32 batch of the input shape (argmax of the logits)."""
        return np.argmax(self(images), axis=-1).astype(np.int32)


class _OnnxRunner(_Runner):
    def __init__(self, path, num_threads=None):
        _require("onnx", ("onnxruntime",))
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0]
        self.input_shape = tuple(self.input.shape)

    def __call__(self, images):
        return self.session.run(None, {self.input.name: images})[0]


class _TFLiteRunner(_Runner):
    """LiteRT's interpreter with its default XNNPACK delegate (float and int8 kernels).

    XNNPACK refuses some int8 graphs (e.g. a tensor that was all zeros on every calibration
    image gets a degenerate scale); the file is then run on LiteRT's built-in kernels and
    `delegate` says so.
    """

    def __init__(self, path, num_threads=None):
        _require("tflite", TFLITE_REQUIREMENTS)
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.delegate = "XNNPACK"
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except RuntimeError as error:
            if "XNNPACK" not in str(error):
                raise
            self.delegate = f"none (XNNPACK refused the graph: {error})"
            self.interpreter = Interpreter(
                model_path=str(path),
                num_threads=num_threads,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.input_shape = tuple(int(v) for v in self.input["shape"])

    def __call__(self, images):
        self.interpreter.set_tensor(self.input["index"], images)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()
