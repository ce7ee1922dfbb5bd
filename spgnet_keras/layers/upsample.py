"""The SPGNet upsample module (Sec 3.3, Fig 2b)."""

import keras

from spgnet_keras.errors import InvalidInputError
from spgnet_keras.layers.common import check_positive_int
from spgnet_keras.layers.residual import BottleneckBlock
from spgnet_keras.layers.resize import ResizeLike


@keras.saving.register_keras_serializable(package="spgnet_keras")
class UpsampleModule(keras.layers.Layer):
    """Merges an encoder feature with the previous decoder output.

    The encoder feature goes through a residual block that brings it to `filters`
    channels; the previous decoder output is bilinearly upsampled to the encoder
    feature's size (x2 between scales; a broadcast for the 1x1 image-level feature)
    and added; a second residual block fuses the two sources (Sec 3.3).

    Call with `[encoder_feature, previous_output]`.

    Args:
        filters: int. Decoder channels D.
        bottleneck_ratio: float. Inner width of both residual blocks, as a fraction of D.
        sync_batchnorm: bool. Whether to use synchronized BatchNormalization.
        folded_batchnorm: bool. Whether BatchNorm is folded into the convolutions of both
            residual blocks.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    ```python
    module = UpsampleModule(8)
    fused = module([np.ones((1, 8, 12, 5)), np.ones((1, 4, 6, 8))])  # (1, 8, 12, 8)
    ```
    """

    def __init__(self, filters, bottleneck_ratio=0.25, sync_batchnorm=False, folded_batchnorm=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = check_positive_int(filters, "filters")
        self.bottleneck_ratio = bottleneck_ratio
        self.sync_batchnorm = sync_batchnorm
        self.folded_batchnorm = bool(folded_batchnorm)
        block_args = dict(bottleneck_ratio=bottleneck_ratio, sync_batchnorm=sync_batchnorm,
                          folded_batchnorm=self.folded_batchnorm, dtype=self.dtype_policy)
        self.encoder_block = BottleneckBlock(filters, name="encoder_block", **block_args)
        self.fuse_block = BottleneckBlock(filters, name="fuse_block", **block_args)
        self.resize = ResizeLike(name="upsample", dtype=self.dtype_policy)

    def build(self, input_shapes):
        encoder_shape, previous_shape = (tuple(s) for s in input_shapes)
        if previous_shape[-1] != self.filters:
            raise InvalidInputError(
                f"{self.name}: the previous decoder output has {previous_shape[-1]} channels, "
                f"expected {self.filters}."
            )
        self.encoder_block.build(encoder_shape)
        self.fuse_block.build(encoder_shape[:-1] + (self.filters,))

    def call(self, inputs, training=None):
        encoder_feature, previous = inputs
        x = self.encoder_block(encoder_feature, training=training)
        x = x + self.resize([previous, x])
        return self.fuse_block(x, training=training)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0][:-1] + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            bottleneck_ratio=self.bottleneck_ratio,
            sync_batchnorm=self.sync_batchnorm,
            folded_batchnorm=self.folded_batchnorm,
        )
        return config
