"""Upsample module, residual block, cross-stage aggregation, SE/GE, resize."""

import keras
import numpy as np
import pytest

from spgnet_keras.layers import (
    BottleneckBlock,
    CrossStageAggregation,
    GatherExciteTransition,
    ResizeLike,
    SemanticPredictionGuidance,
    SqueezeExciteTransition,
    StageTransition,
    UpsampleModule,
)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_bottleneck_projects_only_when_width_changes():
    same = BottleneckBlock(8)
    same(rand(1, 4, 4, 8))
    assert same.shortcut_conv is None and same.conv1.filters == 2
    wider = BottleneckBlock(8)
    assert wider(rand(1, 4, 4, 3)).shape == (1, 4, 4, 8)
    assert wider.shortcut_conv is not None


def test_bottleneck_output_is_relu_of_residual_sum():
    block = BottleneckBlock(8, bottleneck_ratio=0.5)
    x = rand(2, 4, 4, 8)
    out = np.asarray(block(x, training=False))
    residual = np.asarray(block.bn3(block.conv3(np.maximum(np.asarray(block.bn2(block.conv2(
        np.maximum(np.asarray(block.bn1(block.conv1(x), training=False)), 0)), training=False)), 0)),
        training=False))
    assert np.abs(residual).max() > 0.1  # the branch contributes
    np.testing.assert_allclose(out, np.maximum(residual + x, 0), atol=1e-5)
    # With the last conv zeroed the block is relu(identity).
    block.conv3.kernel.assign(np.zeros(block.conv3.kernel.shape, "float32"))
    np.testing.assert_allclose(np.asarray(block(x, training=False)), np.maximum(x, 0), atol=1e-6)


def test_upsample_module_adds_bilinear_upsampled_previous_output():
    module = UpsampleModule(8)
    encoder, previous = rand(2, 8, 12, 5), rand(2, 4, 6, 8, seed=1)
    out = module([encoder, previous], training=False)
    assert out.shape == (2, 8, 12, 8)
    # The fused block sees encoder_block(encoder) + resize(previous): check that sum.
    import tensorflow as tf

    merged = module.encoder_block(encoder, training=False) + tf.image.resize(previous, (8, 12), "bilinear")
    np.testing.assert_allclose(out, module.fuse_block(merged, training=False), atol=1e-5)


def test_upsample_module_broadcasts_image_level_feature():
    module = UpsampleModule(4)
    encoder, pooled = rand(1, 2, 3, 6), rand(1, 1, 1, 4, seed=2)
    out = module([encoder, pooled], training=False)
    merged = module.encoder_block(encoder, training=False) + pooled
    np.testing.assert_allclose(out, module.fuse_block(merged, training=False), atol=1e-5)


def test_upsample_module_rejects_wrong_previous_width():
    with pytest.raises(ValueError, match="channels"):
        UpsampleModule(8)([rand(1, 4, 4, 3), rand(1, 2, 2, 5)])


def test_cross_stage_aggregation_sums_projected_features():
    layer = CrossStageAggregation()
    current, enc, dec = rand(1, 4, 4, 6), rand(1, 4, 4, 3, seed=1), rand(1, 4, 4, 5, seed=2)
    out = np.asarray(layer([current, enc, dec], training=False))
    enc_term = layer.encoder_bn(layer.encoder_conv(enc), training=False)
    dec_term = layer.decoder_bn(layer.decoder_conv(dec), training=False)
    np.testing.assert_allclose(out, current + enc_term + dec_term, atol=1e-5)
    assert layer.encoder_conv.kernel.shape == (1, 1, 3, 6) and layer.decoder_conv.kernel.shape == (1, 1, 5, 6)


def test_resize_like_matches_tf_image_resize_and_broadcasts_1x1():
    import tensorflow as tf

    x, ref = rand(1, 3, 5, 2), rand(1, 6, 10, 1)
    np.testing.assert_allclose(ResizeLike()([x, ref]), tf.image.resize(x, (6, 10), "bilinear"), atol=1e-6)
    one = rand(2, 1, 1, 3)
    np.testing.assert_allclose(ResizeLike()([one, rand(2, 4, 5, 1)]), np.broadcast_to(one, (2, 4, 5, 3)))


def output_path(layer, merged):
    """relu(BN(conv1x1_out(merged))) in NumPy with the layer's inference statistics."""
    bn = layer.output_bn
    projected = merged @ np.asarray(layer.output_conv.kernel)[0, 0]
    scale = np.asarray(bn.gamma) / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
    return np.maximum((projected - np.asarray(bn.moving_mean)) * scale + np.asarray(bn.beta), 0)


@pytest.mark.parametrize("cls", [StageTransition, SqueezeExciteTransition, GatherExciteTransition])
def test_transitions_compute_the_documented_merge_and_output_path(cls):
    layer = cls(output_channels=5)
    x = rand(2, 8, 8, 16)
    out = np.asarray(layer(x, training=False))
    assert out.shape == (2, 8, 8, 5)
    if cls is StageTransition:  # no attention: out = conv1x1_out(x_d)
        merged = x
    else:  # x_d + m * conv1x1_transform(x_d)
        attention = np.asarray(layer.attention(x, training=False))
        merged = x + attention * np.asarray(layer.transform_conv(x))
        assert not np.allclose(merged, x)
    np.testing.assert_allclose(out, output_path(layer, merged), rtol=1e-4, atol=1e-4)


def test_squeeze_excite_attention_is_per_channel():
    layer = SqueezeExciteTransition(output_channels=4, reduction=4)
    x = rand(2, 8, 8, 16)
    layer(x)
    attention = np.asarray(layer.attention(x))
    assert attention.shape == (2, 1, 1, 16) and 0 <= attention.min() and attention.max() <= 1


def test_gather_excite_attention_is_spatial():
    layer = GatherExciteTransition(output_channels=4, extent=4)
    x = rand(1, 8, 8, 6)
    layer(x)
    attention = np.asarray(layer.attention(x, training=False))
    assert attention.shape == (1, 8, 8, 6) and len(layer.gather_convs) == 2
    assert attention.std(axis=(1, 2)).mean() > 0


def test_bad_excite_arguments():
    with pytest.raises(ValueError, match="extent"):
        GatherExciteTransition(extent=3)
    with pytest.raises(ValueError, match="reduction"):
        SqueezeExciteTransition(reduction=0)


FOLDABLE = [
    (lambda folded: BottleneckBlock(8, folded_batchnorm=folded), rand(1, 4, 4, 3)),
    (lambda folded: UpsampleModule(8, folded_batchnorm=folded), [rand(1, 4, 4, 3), rand(1, 2, 2, 8)]),
    (lambda folded: CrossStageAggregation(folded_batchnorm=folded),
     [rand(1, 4, 4, 6), rand(1, 4, 4, 3), rand(1, 4, 4, 5)]),
    (lambda folded: StageTransition(output_channels=4, folded_batchnorm=folded), rand(1, 4, 4, 8)),
    (lambda folded: SqueezeExciteTransition(output_channels=4, reduction=2, folded_batchnorm=folded),
     rand(1, 4, 4, 8)),
    (lambda folded: GatherExciteTransition(output_channels=4, extent=2, folded_batchnorm=folded), rand(1, 4, 4, 8)),
    (lambda folded: SemanticPredictionGuidance(3, output_channels=4, folded_batchnorm=folded), rand(1, 4, 4, 8)),
]


def leaf_layers(layer):
    return [sub for sub in layer._flatten_layers(include_self=False) if not sub._flatten_layers(include_self=False)]


@pytest.mark.parametrize("make, inputs", FOLDABLE, ids=lambda v: "" if not callable(v) else None)
def test_folded_block_rebuilt_from_its_config_is_folded(make, inputs):
    """Folding is an argument kept in the config (no module-level state): the block rebuilt
    from `get_config` has no BatchNorm and a bias on every conv, like the original."""
    folded = make(True)
    folded(inputs, training=False)
    rebuilt = type(folded).from_config(folded.get_config())
    rebuilt(inputs, training=False)
    assert rebuilt.get_config()["folded_batchnorm"] is True
    for block in (folded, rebuilt):
        leaves = leaf_layers(block)
        assert not any(isinstance(sub, keras.layers.BatchNormalization) for sub in leaves)
        convs = [sub for sub in leaves if isinstance(sub, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
        assert convs and all(sub.use_bias for sub in convs)
    unfolded = make(False)
    unfolded(inputs, training=False)
    assert any(isinstance(sub, keras.layers.BatchNormalization) for sub in leaf_layers(unfolded))
    assert unfolded.get_config()["folded_batchnorm"] is False
