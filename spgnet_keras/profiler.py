"""Parameters and multiply-accumulates of SPGNet models, beside the paper's numbers.

MACs are counted on the traced TensorFlow graph: every Conv2D, DepthwiseConv2dNative,
MatMul and BatchMatMul op contributes (output elements) x (multiplies per output).
Element-wise ops, BatchNorm, pooling and resizes are not counted ("#FLOPs take all
matrix multiplication into account", Table 1).

The paper reports #FLOPs "w.r.t. a single 1024x2048 input"; its numbers match a count
at 1025x2049 (the DeepLab crop convention: feature maps 513x1025, 257x513, ...) to
within 0.1 % on the encoder-only differences (R101 - R50 = 158.8 B in Table 7 and in
this count at 1025x2049, 155.1 B at 1024x2048), so the table is made at 1025x2049 by
default and `--height/--width` choose another size. See docs/architecture.md.

SPGNet pads its input to multiples of the output stride 32 inside the model (1025x2049
becomes 1056x2080, 4.6 % more pixels); the table counts the network on the 1025x2049
grid itself, with that padding left out (`count_macs(..., pad_to_stride=False)`).
The input normalisation, padding and cropping layers have no weights and no MACs.
"""

import contextlib
import dataclasses

import numpy as np

from spgnet_keras.errors import InvalidInputError
from spgnet_keras.layers.resize import PadToMultiple
from spgnet_keras.models.presets import ablation_arguments, preset_arguments
from spgnet_keras.models.spgnet import SPGNet

PAPER_SIZE = (1025, 2049)
CITYSCAPES_CLASSES = 19


@dataclasses.dataclass(frozen=True)
class PaperRow:
    """One configuration of the paper's tables with its reported size and cost.

    Example:

    ```python
    row = PAPER_ROWS[0]
    print(row.label, row.params_m, "M parameters,", row.flops_b, "GFLOPs at 1025x2049")
    ```
    """

    tables: str
    label: str
    arguments: dict
    params_m: float
    flops_b: float


PAPER_ROWS = (
    PaperRow("3,5,7", "R18 x1, D=128", preset_arguments("spgnet_r18x1_128"), 11.7, 107.6),
    PaperRow("7", "R50 x1, D=128", preset_arguments("spgnet_r50x1_128"), 24.7, 212.9),
    PaperRow("7", "R101 x1, D=128", preset_arguments("spgnet_r101x1_128"), 43.7, 371.7),
    PaperRow("7", "R152 x1, D=128", preset_arguments("spgnet_r152x1_128"), 59.4, 530.1),
    PaperRow("3", "R18 x2, no SPG (baseline)", ablation_arguments("no_spg"), 23.9, 215.5),
    PaperRow("3", "R18 x2, SPG sum", ablation_arguments("spg_sum"), 23.9, 218.0),
    PaperRow("3", "R18 x2, SPG softmax", ablation_arguments("spg_softmax"), 23.9, 218.0),
    PaperRow("3,5,6,7", "R18 x2, SPG sigmoid", ablation_arguments("spg_sigmoid"), 23.9, 218.0),
    PaperRow("3", "R18 x2, SPG sigmoid, no identity", ablation_arguments("spg_sigmoid_no_identity"), 23.9, 218.0),
    PaperRow("3", "R18 x2, SPG sigmoid, no supervision", ablation_arguments("spg_sigmoid_no_supervision"), 23.9, 218.0),
    PaperRow("5", "R18 x3, D=128", preset_arguments("spgnet_r18x3_128"), 36.2, 328.5),
    PaperRow("6", "R18 + R50, D=128", preset_arguments("spgnet_r18_r50_128"), 38.4, 336.0),
    PaperRow("6", "R50 + R18, D=128", preset_arguments("spgnet_r50_r18_128"), 38.0, 329.9),
    PaperRow("6,7,9", "R50 x2, D=128", preset_arguments("spgnet_r50x2_128"), 55.6, 467.6),
    PaperRow("7,9", "R101 x2, D=128", preset_arguments("spgnet_r101x2_128"), 93.5, 785.3),
    PaperRow("1,9", "R50 x2, D=256", preset_arguments("spgnet_r50x2_256"), 59.8, 654.8),
    PaperRow("9", "R101 x2, D=256", preset_arguments("spgnet_r101x2_256"), 97.8, 972.4),
)

_MATMUL_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2", "BatchMatMulV3")


def count_macs(model, height, width, channels=3, pad_to_stride=True):
    """Multiply-accumulates of one forward pass of `model` on a (1, height, width, C) input.

    Args:
        model: a Keras model (built for inputs of that size or of any size).
        height, width, channels: the input size.
        pad_to_stride: True counts what `model` computes: an SPGNet pads its input to
            multiples of 32 (`PadToMultiple`), e.g. 1025x2049 to 1056x2080. False traces
            it with its `PadToMultiple` layers passed through, i.e. the network on a
            height x width grid, as the paper ran its 1025x2049 crops (feature maps
            513x1025, ...: see the module docstring). The same count either way when
            the sides are multiples of 32.
    """
    import tensorflow as tf  # MACs are counted on a TensorFlow graph; count_params needs no TensorFlow

    spec = tf.TensorSpec((1, height, width, channels), tf.float32)
    with contextlib.nullcontext() if pad_to_stride else _stride_padding_bypassed(model):
        graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    return sum(_op_macs(op) for op in graph.get_operations() if op.type in _MATMUL_OPS)


@contextlib.contextmanager
def _stride_padding_bypassed(model):
    """Within: every `PadToMultiple` layer of `model` returns its input unchanged."""
    layers = [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, PadToMultiple)]
    for layer in layers:
        layer.call = _identity
    try:
        yield
    finally:
        for layer in layers:
            del layer.call


def _identity(inputs):
    return inputs


def _op_macs(op):
    output = op.outputs[0].shape
    if not output.is_fully_defined():
        raise InvalidInputError(f"Cannot count MACs of {op.name}: output shape {output} is not static.")
    output_elements = int(np.prod(output.as_list()))
    weights = op.inputs[1].shape.as_list()
    if op.type == "Conv2D":  # kernel (kh, kw, cin, cout)
        return output_elements * weights[0] * weights[1] * weights[2]
    if op.type == "DepthwiseConv2dNative":  # kernel (kh, kw, cin, multiplier)
        return output_elements * weights[0] * weights[1]
    transpose_a = op.get_attr("transpose_a") if op.type == "MatMul" else op.get_attr("adj_x")
    lhs = op.inputs[0].shape.as_list()
    reduced = lhs[-2] if transpose_a else lhs[-1]
    return output_elements * reduced


def count_params(model):
    """Trainable parameters (what PyTorch's `numel` over parameters counts: no BN moving stats)."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def profile(arguments, num_classes=CITYSCAPES_CLASSES, size=PAPER_SIZE):
    """(params, MACs) of an SPGNet built from `arguments`, the network run on a `size` grid.

    The model's padding of its input to multiples of 32 is left out (see `count_macs`):
    the paper's numbers are those of its network on 1025x2049 crops, with no padding.
    """
    model = SPGNet(num_classes=num_classes, **arguments)
    result = count_params(model), count_macs(model, *size, pad_to_stride=False)
    del model
    import tensorflow as tf

    tf.keras.backend.clear_session() if hasattr(tf, "keras") else None
    return result


def paper_table(size=PAPER_SIZE, rows=PAPER_ROWS, num_classes=CITYSCAPES_CLASSES):
    """A list of dicts: each paper row with our params/MACs and the relative differences."""
    results = []
    for row in rows:
        params, macs = profile(row.arguments, num_classes, size)
        results.append(
            dict(
                tables=row.tables,
                label=row.label,
                paper_params_m=row.params_m,
                params_m=params / 1e6,
                params_diff=params / 1e6 / row.params_m - 1,
                paper_flops_b=row.flops_b,
                macs_b=macs / 1e9,
                macs_diff=macs / 1e9 / row.flops_b - 1,
            )
        )
    return results


def format_table(results, size):
    """Markdown table of `paper_table` results."""
    lines = [
        f"Input {size[0]}x{size[1]}, 19 classes. MACs = conv/matmul multiply-accumulates.",
        "",
        "| Table | Configuration | Paper params | Ours | diff | Paper #FLOPs | Our MACs | diff |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['tables']} | {r['label']} | {r['paper_params_m']:.1f} M | {r['params_m']:.2f} M | "
            f"{100 * r['params_diff']:+.1f} % | {r['paper_flops_b']:.1f} B | {r['macs_b']:.1f} B | "
            f"{100 * r['macs_diff']:+.1f} % |"
        )
    return "\n".join(lines)
