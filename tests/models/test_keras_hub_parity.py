"""SPGNet's ResNet encoder computes exactly what keras-hub's `ResNetBackbone` computes.

The ImageNet weights come from keras-hub, whose stride-2 layers pad explicitly
(`ZeroPadding2D` + "valid", the torchvision alignment). A 'same'-padded encoder loads
those weights without complaint but shifts every stride-2 sampling grid by a pixel,
so the features differ; these tests compare the stride 4..32 features of both
networks after `load_backbone_weights`, on random weights and BatchNorm statistics.
"""

import keras
import keras_hub
import numpy as np
import pytest

from spgnet_keras import SPGNet
from spgnet_keras.models.imagenet import load_backbone_weights
from spgnet_keras.models.resnet import RESNET_SPECS

# (SPGNet backbone, keras-hub block_type, input height, width)
CONFIGS = {
    "resnet18": ("basic_block", 64, 96),
    "resnet50": ("bottleneck_block", 64, 96),
}
RELATIVE_TOLERANCE = 1e-5


def keras_hub_resnet(backbone):
    """A keras-hub ResNet ("v1.5", no pre-activation) of `backbone`'s depth, built offline."""
    block_type = CONFIGS[backbone][0]
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=list(RESNET_SPECS[backbone][1]),
        stackwise_num_strides=[1, 2, 2, 2],
        block_type=block_type,
        use_pre_activation=False,
        image_shape=(None, None, 3),
    )


def randomize(resnet, seed=0):
    """He-scaled random kernels and random BatchNorm gamma/beta/moving mean/variance."""
    rng = np.random.default_rng(seed)
    for layer in resnet.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel = layer.kernel
            fan_in = int(np.prod(kernel.shape[:-1]))
            kernel.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel.shape).astype("float32"))
        elif isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape
            layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.2, channels).astype("float32"))
            layer.moving_mean.assign(rng.normal(0.0, 0.2, channels).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels).astype("float32"))
    return resnet


def spgnet_encoder_features(model, backbone):
    """Stage 1's stride 4/8/16/32 encoder features as a model of the (normalised) image.

    The sub-model starts at the stem's first layer (its zero padding), so it skips any
    preprocessing (the "preprocessing" Rescaling) SPGNet applies to raw RGB input.
    """
    first = model.get_layer("stage1_stem_pad")
    blocks = RESNET_SPECS[backbone][1]
    outputs = [model.get_layer(f"stage1_stack{k + 1}_block{blocks[k]}_out").output for k in range(4)]
    return keras.Model(first.input, outputs)


@pytest.mark.parametrize("backbone", sorted(CONFIGS))
def test_encoder_features_match_keras_hub(backbone):
    """Every keras-hub layer loads, and the P2..P5 features agree to float32 round-off."""
    _, height, width = CONFIGS[backbone]
    resnet = randomize(keras_hub_resnet(backbone))
    model = SPGNet(5, backbones=(backbone,), decoder_channels=16)
    report = load_backbone_weights(model, resnet)

    weighted = [layer.name for layer in resnet.layers if layer.weights]
    assert not report.unused, report.unused
    assert len(set(report.copied)) == len(report.copied) == len(weighted)

    image = np.random.default_rng(1).normal(size=(2, height, width, 3)).astype("float32")
    reference = keras.Model(resnet.inputs, [resnet.pyramid_outputs[f"P{k}"] for k in (2, 3, 4, 5)])
    expected = [np.asarray(f) for f in reference.predict(image, verbose=0)]
    actual = [np.asarray(f) for f in spgnet_encoder_features(model, backbone).predict(image, verbose=0)]
    failures = []
    for stride, want, got in zip((4, 8, 16, 32), expected, actual):
        assert got.shape == want.shape == (2, height // stride, width // stride, want.shape[-1])
        difference = float(np.max(np.abs(got - want)))
        scale = max(1.0, float(np.max(np.abs(want))))
        print(f"{backbone} stride {stride}: max |SPGNet - keras-hub| = {difference:.3g} (max |feature| {scale:.3g})")
        if difference > RELATIVE_TOLERANCE * scale:
            failures.append(f"stride {stride}: {difference:.3g} > {RELATIVE_TOLERANCE} * {scale:.3g}")
    assert not failures, "; ".join(failures)


@pytest.mark.parametrize("backbone, strided_conv", [("resnet18", "conv1"), ("resnet50", "conv2")])
def test_stride_two_layers_pad_explicitly(backbone, strided_conv):
    """Named weightless ZeroPadding2D layers before "valid" stride-2 convs and the max pool."""
    model = SPGNet(3, backbones=(backbone,), decoder_channels=8)
    pads = {"stage1_stem_pad": ("stage1_stem_conv", 3), "stage1_stem_pool_pad": ("stage1_stem_pool", 1)}
    for k in (2, 3, 4):
        pads[f"stage1_stack{k}_block1_{strided_conv}_pad"] = (f"stage1_stack{k}_block1_{strided_conv}", 1)
    for pad_name, (layer_name, width) in pads.items():
        pad, layer = model.get_layer(pad_name), model.get_layer(layer_name)
        assert isinstance(pad, keras.layers.ZeroPadding2D) and not pad.weights
        assert pad.padding == ((width, width), (width, width))
        assert layer.input is pad.output and layer.strides == (2, 2) and layer.padding == "valid"
    for k in (2, 3, 4):
        shortcut = model.get_layer(f"stage1_stack{k}_block1_shortcut_conv")
        assert shortcut.kernel_size == (1, 1) and shortcut.strides == (2, 2) and shortcut.padding == "valid"
    padding_layers = {layer.name for layer in model.layers if isinstance(layer, keras.layers.ZeroPadding2D)}
    assert padding_layers == set(pads)
