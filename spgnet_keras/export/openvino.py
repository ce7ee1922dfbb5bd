"""OpenVINO IR export of the bare network, float32 or int8 (NNCF), for serving on CPUs.

The network of `export_onnx` (BatchNorm folded, one fixed input shape; input `image` float32
`[B, H, W, 3]` RGB 0-255, output the float32 logits `[B, H, W, C]`), converted from that ONNX
graph by `openvino.convert_model` and written by `openvino.save_model` as `NAME.xml` (the
graph) beside `NAME.bin` (its float32 weights: no float16 compression). With
`quantize="int8"`, NNCF's post-training quantization (`nncf.quantize`) calibrates int8
activations and weights on images from the user's data; input and output stay float32.

OpenVINO Runtime (C++ or Python) loads the `.xml` file as it is;
`open_runner("model.xml")` runs it here on the CPU plugin at float32 inference precision
(the plugin's default on AMX machines is bfloat16: set `INFERENCE_PRECISION_HINT` to
`bf16` there for speed). docs/benchmarks.md ("Serving speed") measures it against the other
engines on the machine the benchmark ran on.
"""

import errno
import os
import tempfile
from pathlib import Path

import numpy as np

from spgnet_keras.constants import PREDICTION
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.export.portable import (
    QUANTIZATIONS,
    _fixed_shape,
    _require,
    _Runner,
    calibration_array,
    export_onnx,
    fixed_batches,
)

__all__ = ["class_id_network", "export_openvino", "openvino_network"]


def export_openvino(model, path, input_shape, *, output=PREDICTION, quantize=None, calibration_images=None):
    """Writes the network for a fixed `input_shape` as OpenVINO IR (`path` and its `.bin`).

    Args:
        model: a Keras model (e.g. `SPGNet`) taking RGB 0-255 images.
        path: the `.xml` file to write; the weights go to the same name with `.bin`.
        input_shape: (height, width) or (batch, height, width, 3); batch defaults to 1.
        output: which output of the model to export ("prediction", "stage1", ...).
        quantize: None (float32) or "int8" (NNCF post-training quantization).
        calibration_images: float32 RGB 0-255 `[N, H, W, 3]` images of the exported
            height and width, required for "int8".

    Returns:
        The `Path` of the `.xml` file.

    Example:

    ```python
    export_openvino(model, "spgnet.xml", (1, 512, 1024, 3))
    export_openvino(model, "spgnet_int8.xml", (1, 512, 1024, 3), quantize="int8", calibration_images=images)
    ```
    """
    path = Path(path)
    if path.suffix != ".xml":
        raise InvalidInputError(f"The OpenVINO file name must end in .xml (its weights go beside it in .bin), got {str(path)!r}.")
    if quantize not in QUANTIZATIONS:
        raise InvalidInputError(f"`quantize` must be one of {QUANTIZATIONS}, got {quantize!r}.")
    shape = _fixed_shape(input_shape)
    calibration = calibration_array(calibration_images, shape) if quantize == "int8" else None
    _require("openvino", ("openvino", "nncf") if quantize else ("openvino",))
    import openvino as ov

    path.parent.mkdir(parents=True, exist_ok=True)
    weights = path.with_suffix(".bin")
    try:  # written in a hidden folder beside `path`, then renamed: a failed write leaves the old files whole
        with tempfile.TemporaryDirectory(prefix=f".tmp-{path.stem}-", dir=path.parent) as folder:
            onnx_path = export_onnx(model, Path(folder) / "network.onnx", shape, output=output)
            network = openvino_network(onnx_path, quantize, calibration)
            try:
                ov.save_model(network, str(Path(folder) / path.name), compress_to_fp16=False)
            except RuntimeError as error:  # OpenVINO's C++ stream error names neither file nor cause
                raise OSError(errno.EIO, f"writing the OpenVINO files failed ({error}); is the disk full?") from error
            os.replace(Path(folder) / weights.name, weights)
            os.replace(Path(folder) / path.name, path)
    except OSError as error:
        if error.filename is None:  # e.g. the temporary ONNX file: report the export's own name
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        raise
    return path


def openvino_network(onnx_path, quantize=None, calibration_images=None):
    """The `openvino.Model` of an `export_onnx` file; with `quantize="int8"`, quantized by NNCF
    on `calibration_images` (float32 `[N, H, W, 3]` of the file's input size).

    What `export_openvino` writes, and what benchmarks/serving_speed.py times."""
    _require("openvino", ("openvino", "nncf") if quantize else ("openvino",))
    import openvino as ov

    network = ov.convert_model(str(onnx_path))
    if quantize == "int8":
        import nncf

        shape = tuple(int(v) for v in network.input(0).get_shape())
        batches = fixed_batches(calibration_array(calibration_images, shape), shape[0])
        network = nncf.quantize(network, nncf.Dataset(batches), subset_size=len(batches))
    return network


class OpenVinoRunner(_Runner):
    """OpenVINO's CPU plugin running a network compiled for latency; `open_runner` returns one
    for `.xml` files.

    A call returns the float32 logits; `classes(images)` the int32 class ids `[B, H, W]`, from the
    network with a TopK (k=1 over the classes, ties to the lower id as `np.argmax`) appended and
    compiled on first use, so the argmax runs in the plugin and only the class map is copied out
    (at 512x1024 with 11 classes, a numpy argmax and the copy of the float logits cost more than
    the int8 network's 3x3 convolutions of one stack: docs/benchmarks.md, "Serving speed").

    Args:
        source: an `.xml` file or an `openvino.Model` (e.g. `openvino_network`'s).
        num_threads: CPU threads (None: the plugin's default).
        precision: the plugin's inference precision, "f32" (default: the float model's results;
            int8 where the file is quantized), "bf16", or None for the plugin's own default
            (bfloat16 on AMX machines).
        profile: keep per-node times (`PERF_COUNT`, read from `runner.request.profiling_info`).
    """

    def __init__(self, source, num_threads=None, precision="f32", profile=False):
        _require("openvino", ("openvino",))
        import openvino as ov

        self.config = {"PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": bool(profile)}
        if precision is not None:
            self.config["INFERENCE_PRECISION_HINT"] = {"f32": ov.Type.f32, "bf16": ov.Type.bf16}[precision]
        if num_threads:
            self.config["INFERENCE_NUM_THREADS"] = int(num_threads)
        self.core = ov.Core()
        self.source = self.core.read_model(str(source)) if isinstance(source, (str, Path)) else source
        self.compiled = self.core.compile_model(self.source, "CPU", self.config)
        self.request = self.compiled.create_infer_request()
        self.classes_request = None
        self.input_shape = tuple(int(v) for v in self.compiled.input(0).shape)
        self.delegate = "OpenVINO CPU" if precision in (None, "f32") else f"OpenVINO CPU {precision}"

    def __call__(self, images):
        return self.request.infer({0: np.ascontiguousarray(images, np.float32)})[0]  # a copy: the next call reuses

    def classes(self, images):
        if self.classes_request is None:
            network = class_id_network(self.source)
            self.classes_request = self.core.compile_model(network, "CPU", self.config).create_infer_request()
        return self.classes_request.infer({0: np.ascontiguousarray(images, np.float32)})[0]


def class_id_network(network):
    """A copy of the `openvino.Model` `network` (logits `[B, H, W, C]`) answering the int32 class ids `[B, H, W]`."""
    from openvino import opset13

    network = network.clone()
    (logits_result,) = network.get_results()
    # stable=True: of equal scores the lowest class id, as np.argmax (int8 logits tie); sort="value" is 2x slower.
    top = opset13.topk(logits_result.input_value(0), 1, axis=-1, mode="max", sort="index", index_element_type="i32",
                       stable=True)
    ids = opset13.squeeze(top.output(1), opset13.constant(np.array([-1], np.int64)))
    network.remove_result(logits_result)
    network.add_results([opset13.result(ids)])
    network.validate_nodes_and_infer_types()
    return network
