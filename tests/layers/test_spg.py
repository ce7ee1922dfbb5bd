import numpy as np
import pytest

from spgnet_keras.layers import SemanticPredictionGuidance
from tests.helpers import run_layer_serialization_test


def features(shape=(2, 4, 6, 8), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def conv1x1(x, kernel, bias=None):
    y = np.einsum("bhwc,cd->bhwd", x, kernel[0, 0])
    return y if bias is None else y + bias


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def numpy_spg(layer, x, training=False):
    """The Sec 3.4 equations with the layer's own weights, in NumPy."""
    logits = conv1x1(x, *layer.logits_conv.get_weights())
    attention_in = conv1x1(logits, *layer.attention_conv.get_weights())
    if layer.excitation == "sigmoid":
        excited = sigmoid(attention_in) * conv1x1(x, *layer.transform_conv.get_weights())
    elif layer.excitation == "softmax":
        b, h, w, d = attention_in.shape
        flat = attention_in.reshape(b, h * w, d)
        soft = np.exp(flat - flat.max(axis=1, keepdims=True))
        soft = soft / soft.sum(axis=1, keepdims=True) * (h * w)
        excited = soft.reshape(b, h, w, d) * conv1x1(x, *layer.transform_conv.get_weights())
    else:  # "sum": the transformed prediction plus the transformed features
        excited = attention_in + conv1x1(x, *layer.transform_conv.get_weights())
    merged = x + excited if layer.identity else excited
    out = conv1x1(merged, layer.output_conv.get_weights()[0])
    gamma, beta, mean, var = layer.output_bn.get_weights()
    out = gamma * (out - mean) / np.sqrt(var + layer.output_bn.epsilon) + beta
    return np.maximum(out, 0), logits


def randomise_bn(layer, seed=1):
    rng = np.random.default_rng(seed)
    gamma, beta, mean, var = layer.output_bn.get_weights()
    layer.output_bn.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(size=beta.shape),
                                 rng.normal(size=mean.shape), rng.uniform(0.5, 2, var.shape)])


@pytest.mark.parametrize("excitation", ["sigmoid", "softmax", "sum"])
@pytest.mark.parametrize("identity", [True, False])
def test_spg_matches_numpy_equations(excitation, identity):
    x = features()
    layer = SemanticPredictionGuidance(5, output_channels=3, excitation=excitation, identity=identity)
    layer(x)
    randomise_bn(layer)
    next_input, logits = layer(x, training=False)
    expected_next, expected_logits = numpy_spg(layer, x)
    np.testing.assert_allclose(logits, expected_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(next_input, expected_next, rtol=1e-4, atol=1e-4)
    assert next_input.shape == (2, 4, 6, 3) and logits.shape == (2, 4, 6, 5)


def test_spg_without_supervision_returns_only_next_input():
    layer = SemanticPredictionGuidance(5, output_channels=3, supervision=False)
    out = layer(features())
    assert not isinstance(out, (tuple, list)) and out.shape == (2, 4, 6, 3)


def test_guided_attention_is_in_unit_interval_with_one_channel_per_decoder_channel():
    x = features()
    layer = SemanticPredictionGuidance(5)
    layer(x)
    m = np.asarray(layer.guided_attention(x))
    assert m.shape == x.shape and m.min() >= 0 and m.max() <= 1
    assert layer.attention_conv.kernel.shape == (1, 1, 5, 8)


def test_sum_variant_has_the_same_weights_and_macs_as_sigmoid():
    """Table 3 gives SPG (sum) and SPG (sigmoid) the same #Params and #FLOPs."""
    import keras

    from spgnet_keras.profiler import count_macs, count_params

    costs = {}
    for excitation in ("sum", "sigmoid"):
        inputs = keras.Input((8, 12, 16))
        layer = SemanticPredictionGuidance(5, output_channels=4, excitation=excitation, name="spg")
        model = keras.Model(inputs, layer(inputs))
        shapes = sorted((w.path, tuple(w.shape)) for w in model.weights)
        costs[excitation] = (count_macs(model, 8, 12, channels=16), count_params(model), shapes)
    assert costs["sum"] == costs["sigmoid"]
    macs, params, _ = costs["sum"]
    # logits 16->5, attention 5->16, transform 16->16, output 16->4 (1x1 convs on 8x12).
    assert macs == 8 * 12 * (16 * 5 + 5 * 16 + 16 * 16 + 16 * 4)
    assert params == (16 * 5 + 5) + (5 * 16 + 16) + (16 * 16 + 16) + 16 * 4 + 2 * 4


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_classes=0), "num_classes"),
    (dict(num_classes=3, excitation="tanh"), "excitation"),
    (dict(num_classes=3, output_channels=-1), "output_channels"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SemanticPredictionGuidance(**kwargs)


@pytest.mark.parametrize("excitation", ["sigmoid", "softmax", "sum"])
def test_spg_serialization(excitation, tmp_path):
    run_layer_serialization_test(SemanticPredictionGuidance(4, output_channels=6, excitation=excitation),
                                 features(), tmp_path)
