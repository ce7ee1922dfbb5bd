"""BatchNorm folding (`fold_batchnorm`) and the bfloat16 inference graph (`with_precision`)."""

import keras
import numpy as np
import pytest

from spgnet_keras import SPGNet
from spgnet_keras.export import fold_batchnorm, with_precision
from tests.export.reference import smooth_image

NUM_CLASSES = 4


def randomize_batchnorm_statistics(model, seed):
    """Moving mean/variance, gamma and beta far from their initial 0/1 values, so a wrong fold shows."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0.0, 0.3, channels))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels))
            layer.gamma.assign(rng.uniform(0.6, 1.4, channels))
            layer.beta.assign(rng.normal(0.0, 0.2, channels))


def layer_types(model):
    return {type(layer) for layer in model._flatten_layers()}


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(11)
    built = SPGNet(NUM_CLASSES, backbones=("resnet18", "resnet18"), decoder_channels=8)
    randomize_batchnorm_statistics(built, seed=1)
    return built


@pytest.fixture(scope="module")
def folded(model):
    return fold_batchnorm(model)


@pytest.fixture(scope="module")
def images():
    return np.stack([smooth_image(64, 96, seed=1), smooth_image(64, 96, seed=2)]).astype("float32")


def assert_same_outputs(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name in expected:
        reference = np.asarray(expected[name])
        scale = np.max(np.abs(reference))
        np.testing.assert_allclose(np.asarray(actual[name]), reference, atol=2e-5 * scale, err_msg=name)


def test_folded_model_computes_the_same_outputs_without_batchnorm(model, folded, images):
    """Every output of a 2-stage SPGNet (stem, residual stacks, cross-stage aggregation,
    upsample modules' residual blocks, SPG) agrees with the unfolded model, and no
    BatchNormalization is left: the folded kernels and biases carry the statistics."""
    assert folded.folded_batchnorm and not model.folded_batchnorm
    assert keras.layers.BatchNormalization in layer_types(model)
    assert keras.layers.BatchNormalization not in layer_types(folded)
    assert folded.input_shape == model.input_shape and folded.input.name == model.input.name
    assert len(folded.weights) < len(model.weights)
    assert_same_outputs(folded(images, training=False), model(images, training=False))
    assert fold_batchnorm(folded) is folded


def test_gather_excite_depthwise_convolutions_are_folded(images):
    """guidance="ge" folds BatchNorm into DepthwiseConv2D kernels (per input channel)."""
    keras.utils.set_random_seed(12)
    model = SPGNet(NUM_CLASSES, backbones=("resnet18", "resnet18"), decoder_channels=8, guidance="ge",
                   cross_stage_aggregation=False)
    randomize_batchnorm_statistics(model, seed=2)
    folded = fold_batchnorm(model)
    assert keras.layers.BatchNormalization not in layer_types(folded)
    assert_same_outputs(folded(images, training=False), model(images, training=False))


def test_folded_model_saves_and_loads_in_safe_mode(model, folded, images, tmp_path):
    """Registered layers only (no Lambda): the folded SPGNet round-trips with safe_mode=True
    and computes what the unfolded model does."""
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in folded._flatten_layers())
    path = tmp_path / "folded.keras"
    folded.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert isinstance(loaded, SPGNet) and loaded.folded_batchnorm
    assert_same_outputs(loaded(images, training=False), model(images, training=False))


def test_bfloat16_graph_keeps_the_input_normalisation_and_logits_in_float32(folded):
    """The weights and convolutions are bfloat16; the 0-255 input is normalised in float32 and
    every output is float32 (the agreement with the float model is tested on the bfloat16
    SavedModel in test_quantize.py)."""
    half = with_precision(folded, "bfloat16")
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert half.get_layer("preprocessing").compute_dtype == "float32"
    assert half.get_layer("stage1_stem_conv").kernel.dtype == "bfloat16"
    assert half.get_layer("stage1_stem_conv").compute_dtype == "bfloat16"
    assert all(half.output[name].dtype == "float32" for name in half.output)
    assert with_precision(folded, "float32") is folded


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: fold_batchnorm(keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 1)])), "SPGNet"),
        (lambda: with_precision(None, "float16"), "`precision` must be one of"),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
