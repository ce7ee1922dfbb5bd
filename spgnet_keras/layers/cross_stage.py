"""Cross-stage feature aggregation (Fig 2c, from MSPN, Li et al. 2019)."""

import keras

from spgnet_keras.layers.common import batch_norm, conv


@keras.saving.register_keras_serializable(package="spgnet_keras")
class CrossStageAggregation(keras.layers.Layer):
    """Adds the previous stage's encoder and decoder features at one scale.

    Call with `[current_encoder_feature, previous_encoder_feature, previous_decoder_feature]`
    (same height and width). Each previous feature goes through its own 1x1 conv + BN to
    the current feature's width and the three are summed; the sum feeds both the current
    stage's decoder and its next residual stack, as in MSPN's downsample module.

    Args:
        sync_batchnorm: bool. Whether to use synchronized BatchNormalization.
        folded_batchnorm: bool. Whether BatchNorm is folded into the convolutions (no
            BatchNorm layers; the convs have biases).
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    ```python
    layer = CrossStageAggregation()
    summed = layer([np.ones((1, 8, 8, 6)), np.ones((1, 8, 8, 3)), np.ones((1, 8, 8, 5))])
    ```
    """

    def __init__(self, sync_batchnorm=False, folded_batchnorm=False, **kwargs):
        super().__init__(**kwargs)
        self.sync_batchnorm = sync_batchnorm
        self.folded_batchnorm = bool(folded_batchnorm)

    def build(self, input_shapes):
        current_shape, encoder_shape, decoder_shape = (tuple(s) for s in input_shapes)
        channels = current_shape[-1]
        dtype, folded = self.dtype_policy, self.folded_batchnorm
        self.encoder_conv = conv(channels, 1, name="encoder_conv", dtype=dtype, folded_batchnorm=folded)
        self.encoder_bn = batch_norm("encoder_bn", self.sync_batchnorm, dtype=dtype, folded_batchnorm=folded)
        self.decoder_conv = conv(channels, 1, name="decoder_conv", dtype=dtype, folded_batchnorm=folded)
        self.decoder_bn = batch_norm("decoder_bn", self.sync_batchnorm, dtype=dtype, folded_batchnorm=folded)
        self.encoder_conv.build(encoder_shape)
        self.encoder_bn.build(encoder_shape[:-1] + (channels,))
        self.decoder_conv.build(decoder_shape)
        self.decoder_bn.build(decoder_shape[:-1] + (channels,))

    def call(self, inputs, training=None):
        current, previous_encoder, previous_decoder = inputs
        encoder_term = self.encoder_bn(self.encoder_conv(previous_encoder), training=training)
        decoder_term = self.decoder_bn(self.decoder_conv(previous_decoder), training=training)
        return current + encoder_term + decoder_term

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        config = super().get_config()
        config.update(sync_batchnorm=self.sync_batchnorm, folded_batchnorm=self.folded_batchnorm)
        return config
