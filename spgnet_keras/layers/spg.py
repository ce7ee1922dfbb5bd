"""Semantic Prediction Guidance, the 'supervise-and-excite' module (Sec 3.4, Fig 3)."""

import keras
from keras import ops

from spgnet_keras.errors import InvalidInputError
from spgnet_keras.layers.common import batch_norm, check_positive_int, conv

EXCITATIONS = ("sigmoid", "softmax", "sum")


@keras.saving.register_keras_serializable(package="spgnet_keras")
class SemanticPredictionGuidance(keras.layers.Layer):
    """Re-weights decoder features with attention computed from class predictions.

    With the decoder output x_d (H x W x D) of one stage (Sec 3.4):

        x_l = conv1x1_logits(x_d)                      # H x W x C, supervised
        m   = act(conv1x1_attention(x_l))              # guided attention, H x W x D
        y   = m * conv1x1_transform(x_d)               # 'excite'
        out = conv1x1_out(x_d + y)                     # next stage's input (+BN, ReLU)

    Switches reproduce the rows of Table 3:
    - `excitation="sigmoid"`: act = sigmoid (the paper's SPG).
    - `excitation="softmax"`: act = softmax over the H x W positions of each channel,
      multiplied by H*W so that the mean weight is 1 (a raw spatial softmax would scale
      the branch by ~1/(H*W) and switch it off; the paper does not say which it used).
    - `excitation="sum"`: no excitation; the product becomes a sum,
      y = conv1x1_attention(x_l) + conv1x1_transform(x_d): the transformed prediction is
      added to the transformed decoder features ("SPG (sum)", Sec 4.4). Table 3 gives it
      the same 218.0 GFLOPs and 23.9 M parameters as SPG (sigmoid), so it keeps the
      transform conv (and so the same convolutions as the other variants).
    - `identity=False`: drop x_d from the sum ("Id." column).
    - `supervision=False`: the logits are not returned, so they cannot be supervised
      ("Sup." column); the module then is a gather-and-excite over x_d.

    The logits are computed in float32 whatever the dtype policy, so a mixed-precision
    model is supervised in full precision.

    Returns `(next_stage_input, logits)` when `supervision` is True, else
    `next_stage_input`.

    Args:
        num_classes: int. Number of classes C.
        output_channels: int. Channels of the next stage's input (64 for ResNet stacks).
        excitation: str. "sigmoid", "softmax" or "sum".
        identity: bool. Whether to add x_d (identity path).
        supervision: bool. Whether to return the logits for deep supervision.
        sync_batchnorm: bool. Whether to use synchronized BatchNormalization after the
            output conv.
        folded_batchnorm: bool. Whether that BatchNorm is folded into the output conv.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    ```python
    spg = SemanticPredictionGuidance(19, output_channels=64)
    next_input, logits = spg(np.ones((1, 32, 64, 128), "float32"))
    ```
    """

    def __init__(
        self,
        num_classes,
        output_channels=64,
        excitation="sigmoid",
        identity=True,
        supervision=True,
        sync_batchnorm=False,
        folded_batchnorm=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.output_channels = check_positive_int(output_channels, "output_channels")
        if excitation not in EXCITATIONS:
            raise InvalidInputError(f"`excitation` must be one of {EXCITATIONS}, got {excitation!r}.")
        self.excitation = excitation
        self.identity = bool(identity)
        self.supervision = bool(supervision)
        self.sync_batchnorm = sync_batchnorm
        self.folded_batchnorm = bool(folded_batchnorm)
        dtype = self.dtype_policy
        self.logits_conv = conv(num_classes, 1, use_bias=True, name="logits_conv", dtype="float32")
        self.attention_conv = None  # width D is known in build()
        self.transform_conv = None
        self.output_conv = conv(output_channels, 1, name="output_conv", dtype=dtype,
                                folded_batchnorm=self.folded_batchnorm)
        self.output_bn = batch_norm("output_bn", sync_batchnorm, dtype=dtype, folded_batchnorm=self.folded_batchnorm)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        channels = input_shape[-1]
        self.attention_conv = conv(channels, 1, use_bias=True, name="attention_conv", dtype=self.dtype_policy)
        self.logits_conv.build(input_shape)
        self.attention_conv.build(input_shape[:-1] + (self.num_classes,))
        self.transform_conv = conv(channels, 1, use_bias=True, name="transform_conv", dtype=self.dtype_policy)
        self.transform_conv.build(input_shape)
        self.output_conv.build(input_shape)
        self.output_bn.build(input_shape[:-1] + (self.output_channels,))

    def guided_attention(self, features, logits=None):
        """The guided attention m (or, for "sum", the transformed prediction)."""
        if logits is None:
            logits = self.logits_conv(features)
        pre_activation = self.attention_conv(ops.cast(logits, self.compute_dtype))
        if self.excitation == "sigmoid":
            return ops.sigmoid(pre_activation)
        if self.excitation == "softmax":
            return spatial_softmax(pre_activation)
        return pre_activation

    def call(self, inputs, training=None):
        logits = self.logits_conv(inputs)
        attention = self.guided_attention(inputs, logits)
        transformed = self.transform_conv(inputs)
        excited = attention + transformed if self.excitation == "sum" else attention * transformed
        merged = inputs + excited if self.identity else excited
        next_input = ops.relu(self.output_bn(self.output_conv(merged), training=training))
        if self.supervision:
            return next_input, logits
        return next_input

    def compute_output_shape(self, input_shape):
        next_shape = input_shape[:-1] + (self.output_channels,)
        if self.supervision:
            return next_shape, input_shape[:-1] + (self.num_classes,)
        return next_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            output_channels=self.output_channels,
            excitation=self.excitation,
            identity=self.identity,
            supervision=self.supervision,
            sync_batchnorm=self.sync_batchnorm,
            folded_batchnorm=self.folded_batchnorm,
        )
        return config


def spatial_softmax(x):
    """Softmax over the H x W positions of each channel, scaled so the mean is 1."""
    shape = ops.shape(x)
    flat = ops.reshape(x, (shape[0], shape[1] * shape[2], shape[3]))
    weights = ops.softmax(flat, axis=1) * ops.cast(shape[1] * shape[2], flat.dtype)
    return ops.reshape(weights, shape)
