"""CPU engines beyond TensorFlow and LiteRT for `benchmarks/serving_speed.py` (issue 28):
OpenVINO (float32, bfloat16, int8 with NNCF) and ONNX Runtime static int8 (QDQ).

Every engine runs the folded float32 ONNX file of `spgnet_keras.export.export_onnx` at the
cell's fixed padded shape (input float32 RGB 0-255, output the logits), and has the interface
of `spgnet_keras.export.open_runner`'s runners: `input_shape`, `delegate` and a call on a
float32 batch returning the logits. int8 engines are calibrated on the same CamVid train
images as the int8 TFLite file (`calibration_images`, resized to the input size).
"""

import importlib.util

from spgnet_keras.export.openvino import OpenVinoRunner, openvino_network
from spgnet_keras.export.portable import fixed_batches

OPENVINO_PRECISIONS = {"openvino_f32": "f32", "openvino_bf16": "bf16", "openvino_int8": "int8"}


def available(paths):
    """`paths` without the OpenVINO ones when openvino or nncf is not installed."""
    installed = all(importlib.util.find_spec(name) for name in ("openvino", "nncf"))
    return [name for name in paths if installed or name not in OPENVINO_PRECISIONS]


def openvino_runner(onnx_path, precision, threads, calibration=None, profile=False):
    """`spgnet_keras.export.openvino`'s runner of the exported network at `precision`.

    "f32" / "bf16" set the CPU plugin's inference precision (its own default on AMX machines
    is bfloat16); "int8" quantises the float network with NNCF (`openvino_network`, what
    `spgnet export --format openvino --quantize int8` writes) and lets the plugin run the
    int8 graph (int8 where quantised, its default precision elsewhere). `runner.model` is the
    graph it compiled (after NNCF for int8), for `benchmarks/serving_profile.py`.
    """
    int8 = precision == "int8"
    network = openvino_network(onnx_path, "int8" if int8 else None, calibration)
    runner = OpenVinoRunner(network, threads, precision=None if int8 else precision, profile=profile)
    runner.model, runner.delegate = network, f"OpenVINO CPU {precision}"
    return runner


class _CalibrationReader:
    """onnxruntime.quantization's data reader over a list of batches, one per call."""

    def __init__(self, input_name, batches):
        self.input_name, self.batches, self.index = input_name, batches, 0

    def get_next(self):
        if self.index >= len(self.batches):
            return None
        self.index += 1
        return {self.input_name: self.batches[self.index - 1]}


def onnx_static_int8(onnx_path, out_path, calibration):
    """`onnx_path` quantised by ONNX Runtime's static post-training quantisation: QDQ format,
    per-channel int8 weights, uint8 activations calibrated (MinMax) on `calibration`."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    graph_input = onnx.load(str(onnx_path), load_external_data=False).graph.input[0]
    batch = graph_input.type.tensor_type.shape.dim[0].dim_value
    reader = _CalibrationReader(graph_input.name, fixed_batches(calibration, batch))
    quantize_static(str(onnx_path), str(out_path), reader,
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return out_path
