"""ResNet-18/34/50/101/152 encoder stacks, built so features can be injected between stacks.

keras-cv's `ResNetBackbone` is a closed functional model: nothing can be added to the
output of one stack before the next stack runs, which cross-stage feature aggregation
needs (Fig 2c), and later SPGNet stages start at the first stack with no stem. It also
puts the stride on the first 1x1 conv of a bottleneck (ResNet "v1"), while the paper's
#FLOPs match the torchvision layout with the stride on the 3x3 conv ("v1.5", as
keras-hub's ResNet): see docs/architecture.md. So the stacks are built here with plain
Keras layers, one function per block, with the kernel shapes of keras-cv/keras-hub
ResNets so their ImageNet weights can be copied in (`spgnet_keras.models.imagenet`).

Every stride-2 layer pads like keras-hub's `ResNetBackbone` (the source of those
weights, which pads like PyTorch): an explicit `ZeroPadding2D` of (k - 1) // 2 pixels
on each side, then a "valid" conv or pool. 'same' padding gives the same output sizes,
but at stride 2 on even sizes it pads one pixel less before (top/left) than after, which
shifts every sampling grid by a pixel, so the copied weights would compute other
features. Stride-1 convs keep 'same': it pads (k - 1) // 2 on each side, as keras-hub.
"""

import keras

from spgnet_keras.errors import InvalidInputError
from spgnet_keras.layers.common import LayerSettings

# depth name -> (block type, blocks per stack)
RESNET_SPECS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
STEM_CHANNELS = 64
STACK_WIDTHS = (64, 128, 256, 512)
_DEFAULT = LayerSettings()


def check_backbone_name(name):
    """Returns `name`; raises `InvalidInputError` naming the known encoders unless it is one."""
    if name not in RESNET_SPECS:
        raise InvalidInputError(f"Unknown backbone {name!r}; expected one of {sorted(RESNET_SPECS)}.")
    return name


def apply_stem(x, prefix, settings=_DEFAULT):
    """7x7/2 conv + BN + ReLU + 3x3/2 max pool (Sec 4.2): image -> stride 4, 64 channels.

    Padded like keras-hub's stem (`conv1_pad`, `pool1_pad`): layers `{prefix}_stem_pad`
    and `{prefix}_stem_pool_pad`.

    Args:
        x: tensor. The (normalised, padded) image, channels last.
        prefix: str. Layer name prefix (`"stage1"`).
        settings: `LayerSettings`. Dtype policy, BatchNorm kind and folding.
    """
    x = _padded_conv(x, STEM_CHANNELS, 7, 2, f"{prefix}_stem_conv", settings, pad_name=f"{prefix}_stem_pad")
    x = settings.batch_norm(f"{prefix}_stem_bn")(x)
    x = keras.layers.ReLU(name=f"{prefix}_stem_relu", dtype=settings.dtype)(x)
    # Zero padding is exact for a max pool after a ReLU (every value is >= 0).
    x = keras.layers.ZeroPadding2D(1, name=f"{prefix}_stem_pool_pad", dtype=settings.dtype)(x)
    return keras.layers.MaxPooling2D(3, strides=2, padding="valid", name=f"{prefix}_stem_pool",
                                     dtype=settings.dtype)(x)


def _padded_conv(x, filters, kernel_size, strides, name, settings, pad_name=None):
    """A bias-free conv named `name`, padded like keras-hub's ResNet for its weights.

    Args:
        x: tensor. Input (channels last).
        filters: int. Output channels.
        kernel_size: int. Odd square kernel size.
        strides: int. 1 gives a 'same' conv; 2 zero-pads (kernel_size - 1) // 2 pixels on
            every side (layer `pad_name`, default `{name}_pad`; none for 1x1 kernels)
            and convolves "valid", as keras-hub's `ResNetBackbone` does.
        name: str. Name of the conv layer (ImageNet weights are mapped onto it by name).
        settings: `LayerSettings`. Dtype policy and folding.
        pad_name: str. Name of the padding layer.

    Returns:
        The conv output: ceil(size / strides) on each side, whatever the input size.
    """
    if strides == 1:
        return settings.conv(filters, kernel_size, name=name)(x)
    padding = (kernel_size - 1) // 2
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name=pad_name or f"{name}_pad", dtype=settings.dtype)(x)
    return settings.conv(filters, kernel_size, strides=strides, padding="valid", name=name)(x)


def apply_stack(x, backbone, stack_index, prefix, settings=_DEFAULT):
    """Runs residual stack `stack_index` (0..3) of `backbone`; stacks 1..3 halve the size.

    Args:
        x: tensor. Input features.
        backbone: str. Encoder name ("resnet18", ...).
        stack_index: int. 0..3.
        prefix: str. Layer name prefix (`"stage1"`).
        settings: `LayerSettings`. Dtype policy, BatchNorm kind and folding.
    """
    block_type, blocks = RESNET_SPECS[check_backbone_name(backbone)]
    apply_block = apply_bottleneck_block if block_type == "bottleneck" else apply_basic_block
    width = STACK_WIDTHS[stack_index]
    for block_index in range(blocks[stack_index]):
        strides = 2 if (block_index == 0 and stack_index > 0) else 1
        name = f"{prefix}_stack{stack_index + 1}_block{block_index + 1}"
        x = apply_block(x, width, strides, name, settings)
    return x


def apply_basic_block(x, width, strides, name, settings=_DEFAULT):
    """ResNet-18/34 block: two 3x3 convs, projection shortcut when the shape changes."""
    dtype = settings.dtype
    shortcut = _shortcut(x, width, strides, name, settings)
    y = _padded_conv(x, width, 3, strides, f"{name}_conv1", settings)
    y = settings.batch_norm(f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1", dtype=dtype)(y)
    y = settings.conv(width, 3, name=f"{name}_conv2")(y)
    y = settings.batch_norm(f"{name}_bn2")(y)
    y = keras.layers.Add(name=f"{name}_add", dtype=dtype)([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out", dtype=dtype)(y)


def apply_bottleneck_block(x, width, strides, name, settings=_DEFAULT):
    """ResNet-50/101/152 block, stride on the 3x3 conv (torchvision / "v1.5" layout)."""
    dtype = settings.dtype
    shortcut = _shortcut(x, width * 4, strides, name, settings)
    y = settings.conv(width, 1, name=f"{name}_conv1")(x)
    y = settings.batch_norm(f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1", dtype=dtype)(y)
    y = _padded_conv(y, width, 3, strides, f"{name}_conv2", settings)
    y = settings.batch_norm(f"{name}_bn2")(y)
    y = keras.layers.ReLU(name=f"{name}_relu2", dtype=dtype)(y)
    y = settings.conv(width * 4, 1, name=f"{name}_conv3")(y)
    y = settings.batch_norm(f"{name}_bn3")(y)
    y = keras.layers.Add(name=f"{name}_add", dtype=dtype)([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out", dtype=dtype)(y)


def _shortcut(x, filters, strides, name, settings):
    if strides == 1 and x.shape[-1] == filters:
        return x
    shortcut = _padded_conv(x, filters, 1, strides, f"{name}_shortcut_conv", settings)
    return settings.batch_norm(f"{name}_shortcut_bn")(shortcut)
