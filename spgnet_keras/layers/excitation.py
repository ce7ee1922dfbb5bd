"""Unsupervised alternatives to SPG between stages (Table 3 baseline, Table 4 SE/GE).

Each layer maps the decoder output x_d of one stage to the next stage's input with the
same output path as SPG (`conv1x1_out` + BN + ReLU) so that the ablation changes only
where the attention comes from:

- `StageTransition`: no attention, out = conv1x1_out(x_d) (Table 3, "SPG x": the
  decoder features passed directly to the next encoder).
- `SqueezeExciteTransition`: m = sigmoid(FC(ReLU(FC(GAP(x_d))))) (SE, Hu et al. 2018),
  out = conv1x1_out(x_d + m * conv1x1_transform(x_d)). GAP is global, or at inference
  crop-sized with `test_pooling="crop"` (`spgnet_keras.layers.pooling`).
- `GatherExciteTransition`: m = sigmoid(upsample(gather(x_d))), gather = a stack of
  stride-2 3x3 depthwise convolutions + BN covering `extent` (GE-theta, Hu et al.
  NeurIPS 2018), same excite and output path.
"""

import math

import keras
from keras import ops

from spgnet_keras.errors import InvalidInputError
from spgnet_keras.layers.common import batch_norm, check_positive_int, conv
from spgnet_keras.layers.pooling import ContextPooling
from spgnet_keras.layers.resize import ResizeLike


@keras.saving.register_keras_serializable(package="spgnet_keras")
class StageTransition(keras.layers.Layer):
    """Next stage's input from x_d with a 1x1 conv + BN + ReLU, no attention.

    Args:
        output_channels: int. Channels of the next stage's input.
        sync_batchnorm: bool. Whether to use synchronized BatchNormalization.
        folded_batchnorm: bool. Whether BatchNorm is folded into the convolutions (no
            BatchNorm layers; every conv has a bias).
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    ```python
    transition = StageTransition(output_channels=64)
    next_input = transition(np.ones((1, 16, 16, 128), "float32"))  # (1, 16, 16, 64)
    ```
    """

    def __init__(self, output_channels=64, sync_batchnorm=False, folded_batchnorm=False, **kwargs):
        super().__init__(**kwargs)
        self.output_channels = check_positive_int(output_channels, "output_channels")
        self.sync_batchnorm = sync_batchnorm
        self.folded_batchnorm = bool(folded_batchnorm)
        self.output_conv = self._conv(output_channels, "output_conv")
        self.output_bn = self._batch_norm("output_bn")

    def _conv(self, filters, name, use_bias=False):
        return conv(filters, 1, use_bias=use_bias, name=name, dtype=self.dtype_policy,
                    folded_batchnorm=self.folded_batchnorm)

    def _batch_norm(self, name):
        return batch_norm(name, self.sync_batchnorm, dtype=self.dtype_policy, folded_batchnorm=self.folded_batchnorm)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self.output_conv.build(input_shape)
        self.output_bn.build(input_shape[:-1] + (self.output_channels,))

    def merge(self, inputs, training=None):
        """Features handed to the output conv (overridden by the excite variants)."""
        return inputs

    def call(self, inputs, training=None):
        merged = self.merge(inputs, training=training)
        return ops.relu(self.output_bn(self.output_conv(merged), training=training))

    def compute_output_shape(self, input_shape):
        return input_shape[:-1] + (self.output_channels,)

    def get_config(self):
        config = super().get_config()
        config.update(output_channels=self.output_channels, sync_batchnorm=self.sync_batchnorm,
                      folded_batchnorm=self.folded_batchnorm)
        return config


class _ExciteTransition(StageTransition):
    """x_d + attention * conv1x1_transform(x_d), then the output path."""

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        channels = input_shape[-1]
        self.transform_conv = self._conv(channels, "transform_conv", use_bias=True)
        self.transform_conv.build(input_shape)
        self.build_attention(input_shape)
        super().build(input_shape)

    def merge(self, inputs, training=None):
        attention = self.attention(inputs, training=training)
        return inputs + attention * self.transform_conv(inputs)


@keras.saving.register_keras_serializable(package="spgnet_keras")
class SqueezeExciteTransition(_ExciteTransition):
    """Squeeze-and-excite between stages (Table 4, "SE").

    Args:
        output_channels: int. Channels of the next stage's input.
        reduction: int. Channel reduction of the bottleneck MLP (16 in the SE paper).
        sync_batchnorm: bool. Whether to use synchronized BatchNormalization.
        test_pooling: str. "global" (default) or "crop": the squeeze at inference (see
            `spgnet_keras.layers.pooling.ContextPooling`; training pools globally).
        pool_size: tuple of 2 ints. (height, width) window in positions of x_d, for "crop".
        folded_batchnorm: bool. Whether BatchNorm is folded into the convolutions.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    ```python
    transition = SqueezeExciteTransition(output_channels=64, reduction=16)
    next_input = transition(np.ones((1, 16, 16, 128), "float32"))  # (1, 16, 16, 64)
    ```
    """

    def __init__(self, output_channels=64, reduction=16, sync_batchnorm=False, test_pooling="global",
                 pool_size=None, folded_batchnorm=False, **kwargs):
        super().__init__(output_channels=output_channels, sync_batchnorm=sync_batchnorm,
                         folded_batchnorm=folded_batchnorm, **kwargs)
        self.reduction = check_positive_int(reduction, "reduction")
        self.squeeze = ContextPooling(test_pooling, pool_size, name="squeeze", dtype=self.dtype_policy)

    def build_attention(self, input_shape):
        channels = input_shape[-1]
        hidden = max(1, channels // self.reduction)
        self.squeeze_conv = self._conv(hidden, "squeeze_conv", use_bias=True)
        self.excite_conv = self._conv(channels, "excite_conv", use_bias=True)
        self.squeeze_conv.build((input_shape[0], 1, 1, channels))
        self.excite_conv.build((input_shape[0], 1, 1, hidden))

    def attention(self, inputs, training=None):
        pooled = self.squeeze(inputs, training=training)
        return ops.sigmoid(self.excite_conv(ops.relu(self.squeeze_conv(pooled))))

    def get_config(self):
        config = super().get_config()
        pool_size = self.squeeze.pool_size
        config.update(reduction=self.reduction, test_pooling=self.squeeze.mode,
                      pool_size=None if pool_size is None else list(pool_size))
        return config


@keras.saving.register_keras_serializable(package="spgnet_keras")
class GatherExciteTransition(_ExciteTransition):
    """Gather-and-excite between stages (Table 4, "GE", the GE-theta variant).

    Args:
        output_channels: int. Channels of the next stage's input.
        extent: int. Gather extent, a power of two; log2(extent) stride-2 depthwise convs.
        sync_batchnorm: bool. Whether to use synchronized BatchNormalization.
        folded_batchnorm: bool. Whether BatchNorm is folded into the convolutions.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    ```python
    transition = GatherExciteTransition(output_channels=64, extent=8)
    next_input = transition(np.ones((1, 16, 16, 128), "float32"))  # (1, 16, 16, 64)
    ```
    """

    def __init__(self, output_channels=64, extent=8, sync_batchnorm=False, folded_batchnorm=False, **kwargs):
        super().__init__(output_channels=output_channels, sync_batchnorm=sync_batchnorm,
                         folded_batchnorm=folded_batchnorm, **kwargs)
        if not isinstance(extent, int) or extent < 2 or extent & (extent - 1):
            raise InvalidInputError(f"`extent` must be a power of two >= 2, got {extent!r}.")
        self.extent = extent
        self.gather_convs = []
        self.gather_bns = []
        self.resize = ResizeLike(name="excite_upsample", dtype=self.dtype_policy)

    def build_attention(self, input_shape):
        self.gather_convs, self.gather_bns = [], []
        shape = input_shape
        for i in range(int(math.log2(self.extent))):
            depthwise = keras.layers.DepthwiseConv2D(
                3, strides=2, padding="same", use_bias=self.folded_batchnorm, name=f"gather_conv{i + 1}",
                dtype=self.dtype_policy,
            )
            bn = self._batch_norm(f"gather_bn{i + 1}")
            depthwise.build(shape)
            shape = depthwise.compute_output_shape(shape)
            bn.build(shape)
            self.gather_convs.append(depthwise)
            self.gather_bns.append(bn)

    def attention(self, inputs, training=None):
        gathered = inputs
        for i, (depthwise, bn) in enumerate(zip(self.gather_convs, self.gather_bns)):
            gathered = bn(depthwise(gathered), training=training)
            if i + 1 < len(self.gather_convs):
                gathered = ops.relu(gathered)
        return ops.sigmoid(self.resize([gathered, inputs]))

    def get_config(self):
        config = super().get_config()
        config.update(extent=self.extent)
        return config
