"""ResNet-18/34/50/101/152 encoder stacks, built so features can be injected between stacks.

keras-cv's `ResNetBackbone` is a closed functional model: nothing can be added to the
output of one stack before the next stack runs, which cross-stage feature aggregation
needs (Fig 2c), and later SPGNet stages start at the first stack with no stem. It also
puts the stride on the first 1x1 conv of a bottleneck (ResNet "v1"), while the paper's
#FLOPs match the torchvision layout with the stride on the 3x3 conv ("v1.5", as
keras-hub's ResNet): see docs/architecture.md. So the stacks are built here with plain
Keras layers, one function per block, with the kernel shapes of keras-cv/keras-hub
ResNets so their ImageNet weights can be copied in (`spgnet_keras.models.weights`).
"""

import keras

from spgnet_keras.layers.common import batch_norm, conv

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


def check_backbone_name(name):
    """Raises a ValueError naming the known encoders unless `name` is one."""
    if name not in RESNET_SPECS:
        raise ValueError(f"Unknown backbone {name!r}; expected one of {sorted(RESNET_SPECS)}.")
    return name


def stack_output_channels(name):
    """Channels of the four stack outputs (strides 4, 8, 16, 32)."""
    block_type, _ = RESNET_SPECS[check_backbone_name(name)]
    expansion = 4 if block_type == "bottleneck" else 1
    return tuple(width * expansion for width in STACK_WIDTHS)


def apply_stem(x, prefix, sync_batchnorm=False):
    """7x7/2 conv + BN + ReLU + 3x3/2 max pool (Sec 4.2): image -> stride 4, 64 channels."""
    x = conv(STEM_CHANNELS, 7, strides=2, name=f"{prefix}_stem_conv")(x)
    x = batch_norm(f"{prefix}_stem_bn", sync_batchnorm)(x)
    x = keras.layers.ReLU(name=f"{prefix}_stem_relu")(x)
    return keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"{prefix}_stem_pool")(x)


def apply_stack(x, backbone, stack_index, prefix, sync_batchnorm=False):
    """Runs residual stack `stack_index` (0..3) of `backbone`; stacks 1..3 halve the size."""
    block_type, blocks = RESNET_SPECS[check_backbone_name(backbone)]
    apply_block = apply_bottleneck_block if block_type == "bottleneck" else apply_basic_block
    width = STACK_WIDTHS[stack_index]
    for block_index in range(blocks[stack_index]):
        strides = 2 if (block_index == 0 and stack_index > 0) else 1
        name = f"{prefix}_stack{stack_index + 1}_block{block_index + 1}"
        x = apply_block(x, width, strides, name, sync_batchnorm)
    return x


def apply_basic_block(x, width, strides, name, sync_batchnorm):
    """ResNet-18/34 block: two 3x3 convs, projection shortcut when the shape changes."""
    shortcut = _shortcut(x, width, strides, name, sync_batchnorm)
    y = conv(width, 3, strides=strides, name=f"{name}_conv1")(x)
    y = batch_norm(f"{name}_bn1", sync_batchnorm)(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = conv(width, 3, name=f"{name}_conv2")(y)
    y = batch_norm(f"{name}_bn2", sync_batchnorm)(y)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def apply_bottleneck_block(x, width, strides, name, sync_batchnorm):
    """ResNet-50/101/152 block, stride on the 3x3 conv (torchvision / "v1.5" layout)."""
    shortcut = _shortcut(x, width * 4, strides, name, sync_batchnorm)
    y = conv(width, 1, name=f"{name}_conv1")(x)
    y = batch_norm(f"{name}_bn1", sync_batchnorm)(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = conv(width, 3, strides=strides, name=f"{name}_conv2")(y)
    y = batch_norm(f"{name}_bn2", sync_batchnorm)(y)
    y = keras.layers.ReLU(name=f"{name}_relu2")(y)
    y = conv(width * 4, 1, name=f"{name}_conv3")(y)
    y = batch_norm(f"{name}_bn3", sync_batchnorm)(y)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def _shortcut(x, filters, strides, name, sync_batchnorm):
    if strides == 1 and x.shape[-1] == filters:
        return x
    shortcut = conv(filters, 1, strides=strides, name=f"{name}_shortcut_conv")(x)
    return batch_norm(f"{name}_shortcut_bn", sync_batchnorm)(shortcut)
