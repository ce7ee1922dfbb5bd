"""The ResNet bottleneck block used inside the SPGNet decoder (Sec 3.3, Fig 2b)."""

import keras

from spgnet_keras.errors import InvalidInputError
from spgnet_keras.layers.common import batch_norm, check_positive_int, conv


@keras.saving.register_keras_serializable(package="spgnet_keras")
class BottleneckBlock(keras.layers.Layer):
    """ResNet bottleneck: 1x1 -> 3x3 -> 1x1 convolutions with a residual shortcut.

    "Residual Block: same bottleneck module used in ResNet" (Fig 2 caption): the inner
    width is `filters * bottleneck_ratio` (ResNet's expansion 4 gives 0.25) and a 1x1
    projection shortcut is added when the input width differs from `filters`.

    Args:
        filters: output channels.
        bottleneck_ratio: inner width as a fraction of `filters`.
        sync_batchnorm: use synchronized BatchNormalization.
    """

    def __init__(self, filters, bottleneck_ratio=0.25, sync_batchnorm=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = check_positive_int(filters, "filters")
        if not 0 < bottleneck_ratio <= 4:
            raise InvalidInputError(f"`bottleneck_ratio` must be in (0, 4], got {bottleneck_ratio!r}.")
        self.bottleneck_ratio = bottleneck_ratio
        self.sync_batchnorm = sync_batchnorm
        width = max(1, int(round(filters * bottleneck_ratio)))
        dtype = self.dtype_policy
        self.conv1 = conv(width, 1, name="conv1", dtype=dtype)
        self.bn1 = batch_norm("bn1", sync_batchnorm, dtype=dtype)
        self.conv2 = conv(width, 3, name="conv2", dtype=dtype)
        self.bn2 = batch_norm("bn2", sync_batchnorm, dtype=dtype)
        self.conv3 = conv(filters, 1, name="conv3", dtype=dtype)
        self.bn3 = batch_norm("bn3", sync_batchnorm, dtype=dtype)
        self.shortcut_conv = None
        self.shortcut_bn = None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if input_shape[-1] != self.filters:
            self.shortcut_conv = conv(self.filters, 1, name="shortcut_conv", dtype=self.dtype_policy)
            self.shortcut_bn = batch_norm("shortcut_bn", self.sync_batchnorm, dtype=self.dtype_policy)
            self.shortcut_conv.build(input_shape)
            self.shortcut_bn.build(input_shape[:-1] + (self.filters,))
        width = self.conv1.filters
        inner_shape = input_shape[:-1] + (width,)
        self.conv1.build(input_shape)
        self.bn1.build(inner_shape)
        self.conv2.build(inner_shape)
        self.bn2.build(inner_shape)
        self.conv3.build(inner_shape)
        self.bn3.build(input_shape[:-1] + (self.filters,))

    def call(self, inputs, training=None):
        x = keras.ops.relu(self.bn1(self.conv1(inputs), training=training))
        x = keras.ops.relu(self.bn2(self.conv2(x), training=training))
        x = self.bn3(self.conv3(x), training=training)
        shortcut = inputs
        if self.shortcut_conv is not None:
            shortcut = self.shortcut_bn(self.shortcut_conv(inputs), training=training)
        return keras.ops.relu(x + shortcut)

    def compute_output_shape(self, input_shape):
        return input_shape[:-1] + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            bottleneck_ratio=self.bottleneck_ratio,
            sync_batchnorm=self.sync_batchnorm,
        )
        return config
