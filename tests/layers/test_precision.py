"""Every layer and the model under float32, mixed_float16 and mixed_bfloat16 (in the style
of keras-hub's `run_precision_test`): variables float32, compute dtype as set, logits float32."""

import keras
import numpy as np
import pytest

from spgnet_keras import SPGNet
from spgnet_keras.layers import (
    BottleneckBlock,
    ContextPooling,
    CropLike,
    CrossStageAggregation,
    GatherExciteTransition,
    PadToMultiple,
    ResizeLike,
    SemanticPredictionGuidance,
    SqueezeExciteTransition,
    StageTransition,
    UpsampleModule,
)

POLICIES = ["float32", "mixed_float16", "mixed_bfloat16"]


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


LAYERS = {
    "BottleneckBlock": (lambda dtype: BottleneckBlock(8, dtype=dtype), lambda: rand(1, 4, 4, 3)),
    "UpsampleModule": (lambda dtype: UpsampleModule(8, dtype=dtype), lambda: [rand(1, 4, 4, 3), rand(1, 2, 2, 8)]),
    "CrossStageAggregation": (lambda dtype: CrossStageAggregation(dtype=dtype),
                              lambda: [rand(1, 4, 4, 6), rand(1, 4, 4, 3), rand(1, 4, 4, 5)]),
    "StageTransition": (lambda dtype: StageTransition(output_channels=4, dtype=dtype), lambda: rand(1, 4, 4, 8)),
    "SqueezeExciteTransition": (lambda dtype: SqueezeExciteTransition(output_channels=4, reduction=2, dtype=dtype),
                                lambda: rand(1, 4, 4, 8)),
    "GatherExciteTransition": (lambda dtype: GatherExciteTransition(output_channels=4, extent=2, dtype=dtype),
                               lambda: rand(1, 4, 4, 8)),
    "SemanticPredictionGuidance": (lambda dtype: SemanticPredictionGuidance(5, output_channels=6, dtype=dtype),
                                   lambda: rand(1, 4, 4, 8)),
    "ContextPooling": (lambda dtype: ContextPooling("crop", pool_size=(2, 2), dtype=dtype), lambda: rand(1, 4, 4, 3)),
    "ResizeLike": (lambda dtype: ResizeLike(dtype=dtype), lambda: [rand(1, 2, 2, 3), rand(1, 4, 4, 1)]),
    "PadToMultiple": (lambda dtype: PadToMultiple(4, dtype=dtype), lambda: rand(1, 5, 7, 3)),
    "CropLike": (lambda dtype: CropLike(dtype=dtype), lambda: [rand(1, 8, 8, 3), rand(1, 5, 7, 3)]),
}


def flat(outputs):
    return keras.tree.flatten(outputs)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_computes_in_its_policy_with_float32_variables(name, policy):
    make, inputs = LAYERS[name]
    layer = make(policy)
    outputs = layer(inputs(), training=False)
    expected = keras.dtype_policies.get(policy)
    assert layer.compute_dtype == expected.compute_dtype and layer.variable_dtype == "float32"
    # SPG returns (next stage's input, logits): its logits are float32 under any policy.
    dtypes = [expected.compute_dtype, "float32"] if name == "SemanticPredictionGuidance" else [expected.compute_dtype]
    assert [keras.backend.standardize_dtype(output.dtype) for output in flat(outputs)] == dtypes, name
    for variable in layer.weights:
        assert variable.dtype == "float32", (name, variable.path)
    for sublayer in layer._flatten_layers(include_self=False):
        wanted = "float32" if sublayer.name == "logits_conv" else policy
        assert sublayer.dtype_policy.name == wanted, (name, sublayer.name, sublayer.dtype_policy.name)
    config = layer.get_config()
    assert keras.dtype_policies.deserialize(config["dtype"]).name == policy


# Layers SPGNet keeps in float32 under any policy: the 0-255 input normalisation, the
# classifiers (logits), their upsampling and cropping to the input.
FLOAT32_LAYERS = ("preprocessing", "classifier", "upsample", "prediction", "stage1")


@pytest.mark.parametrize("policy", POLICIES)
def test_model_threads_its_dtype_policy_to_every_layer(policy):
    model = SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=8, dtype=policy)
    compute = keras.dtype_policies.get(policy).compute_dtype
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left alone
    assert model.dtype_policy.name == policy
    assert SPGNet.from_config(model.get_config()).dtype_policy.name == policy
    assert keras.backend.standardize_dtype(model.input.dtype) == "float32"  # 0-255 RGB in
    pinned = [layer.name for layer in model.layers if layer.name.endswith(FLOAT32_LAYERS)]
    assert {"preprocessing", "stage2_classifier", "prediction_upsample", "prediction"} <= set(pinned)
    for layer in model.layers[1:]:  # after the input layer
        expected = "float32" if layer.name in pinned else compute
        assert layer.compute_dtype == expected, (layer.name, layer.compute_dtype)
    assert all(variable.dtype == "float32" for variable in model.weights)
    outputs = model(np.random.default_rng(0).integers(0, 256, size=(1, 45, 70, 3)).astype("uint8"), training=False)
    for name, value in outputs.items():
        assert keras.backend.standardize_dtype(value.dtype) == "float32", name
        assert np.isfinite(np.asarray(value)).all(), name
