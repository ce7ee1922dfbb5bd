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
        filters: int. Output channels.
        bottleneck_ratio: float. Inner width as a fraction of `filters`, in (0, 4].
        sync_batchnorm: bool. Whether to use synchronized BatchNormalization.
        folded_batchnorm: bool. Whether BatchNorm is folded into the convolutions (no
            BatchNorm layers; every conv has a bias), see `spgnet_keras.export.fold_batchnorm`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    ```python
    block = BottleneckBlock(64)
    features = block(np.ones((1, 32, 32, 16), "float32"))  # (1, 32, 32, 64)
    ```
    """

    def __init__(self, filters, bottleneck_ratio=0.25, sync_batchnorm=False, folded_batchnorm=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = check_positive_int(filters, "filters")
        if not 0 < bottleneck_ratio <= 4:
            raise InvalidInputError(f"`bottleneck_ratio` must be in (0, 4], got {bottleneck_ratio!r}.")
        self.bottleneck_ratio = bottleneck_ratio
        self.sync_batchnorm = sync_batchnorm
        self.folded_batchnorm = bool(folded_batchnorm)
        width = max(1, int(round(filters * bottleneck_ratio)))
        self.conv1 = self._conv(width, 1, "conv1")
        self.bn1 = self._batch_norm("bn1")
        self.conv2 = self._conv(width, 3, "conv2")
        self.bn2 = self._batch_norm("bn2")
        self.conv3 = self._conv(filters, 1, "conv3")
        self.bn3 = self._batch_norm("bn3")
        self.shortcut_conv = None
        self.shortcut_bn = None

    def _conv(self, filters, kernel_size, name):
        return conv(filters, kernel_size, name=name, dtype=self.dtype_policy, folded_batchnorm=self.folded_batchnorm)

    def _batch_norm(self, name):
        return batch_norm(name, self.sync_batchnorm, dtype=self.dtype_policy, folded_batchnorm=self.folded_batchnorm)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if input_shape[-1] != self.filters:
            self.shortcut_conv = self._conv(self.filters, 1, "shortcut_conv")
            self.shortcut_bn = self._batch_norm("shortcut_bn")
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
            folded_batchnorm=self.folded_batchnorm,
        )
        return config
