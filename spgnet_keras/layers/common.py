"""Small building blocks shared by the SPGNet layers.

Whether BatchNorm is folded into the convolutions is an argument of every function and
layer here (`folded_batchnorm`), kept in the layers' configs: no module-level state
decides what a layer builds.
"""

import dataclasses

import keras

from spgnet_keras.errors import InvalidInputError

# PyTorch-style BatchNorm defaults (the paper trained with Inplace-ABN in PyTorch):
# running averages updated with weight 0.1 per step, epsilon 1e-5.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def batch_norm(name=None, synchronized=False, dtype=None, folded_batchnorm=False):
    """A BatchNormalization layer with the package's defaults.

    Args:
        name: str. Layer name.
        synchronized: bool. Whether statistics are all-reduced across replicas under a
            `tf.distribute` strategy (synchronized BatchNorm, paper Sec 4.2).
        dtype: str or `keras.DTypePolicy`. Dtype policy of the layer.
        folded_batchnorm: bool. If True, the BatchNorm is folded into the convolution
            before it: an `Identity` layer of the same name is returned
            (`spgnet_keras.export.fold_batchnorm` writes the folded weights).

    Returns:
        A `keras.layers.BatchNormalization`, or a `keras.layers.Identity` when folded.
    """
    if folded_batchnorm:
        return keras.layers.Identity(name=name, dtype=dtype)
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        synchronized=synchronized,
        name=name,
        dtype=dtype,
    )


def conv(filters, kernel_size, strides=1, use_bias=False, name=None, dtype=None, folded_batchnorm=False,
         padding="same"):
    """A Conv2D with He-normal initialisation.

    Args:
        filters: int. Output channels.
        kernel_size: int. Square kernel size.
        strides: int. Stride.
        use_bias: bool. Whether the conv has a bias.
        name: str. Layer name.
        dtype: str or `keras.DTypePolicy`. Dtype policy of the layer.
        folded_batchnorm: bool. If True, the conv always has a bias, which holds the
            folded shift of the BatchNorm after it. Every conv of SPGNet is either
            followed by a BatchNorm or has a bias already, so this adds no bias that
            BatchNorm did not need.
        padding: str. "same" (default) or "valid".

    Returns:
        A `keras.layers.Conv2D`.
    """
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=use_bias or folded_batchnorm,
        kernel_initializer="he_normal",
        name=name,
        dtype=dtype,
    )


def check_positive_int(value, name):
    """Returns `value`; raises `InvalidInputError` unless it is a positive integer.

    Args:
        value: int. The value to check.
        name: str. Argument name, for the message.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"`{name}` must be a positive integer, got {value!r}.")
    return value


@dataclasses.dataclass(frozen=True)
class LayerSettings:
    """What every layer of one SPGNet is built with: dtype policy, BatchNorm kind, folding.

    Passed explicitly to the functions that build the graph (no global dtype policy or
    folding flag is read or set).

    Args:
        dtype: str or `keras.DTypePolicy`. Dtype policy of every layer (None: Keras' global
            policy at build time).
        sync_batchnorm: bool. Whether BatchNorm layers are synchronized across replicas.
        folded_batchnorm: bool. Whether BatchNorm is folded into the convolutions.

    Example:

    ```python
    settings = LayerSettings(dtype="mixed_bfloat16")
    y = settings.batch_norm("bn")(settings.conv(64, 3, name="conv")(x))
    ```
    """

    dtype: object = None
    sync_batchnorm: bool = False
    folded_batchnorm: bool = False

    def conv(self, filters, kernel_size, **kwargs):
        """`conv(...)` with these settings."""
        return conv(filters, kernel_size, dtype=self.dtype, folded_batchnorm=self.folded_batchnorm, **kwargs)

    def batch_norm(self, name):
        """`batch_norm(...)` with these settings."""
        return batch_norm(name, self.sync_batchnorm, dtype=self.dtype, folded_batchnorm=self.folded_batchnorm)

    def block_arguments(self):
        """Keyword arguments of the package's blocks: `dtype`, `sync_batchnorm`, `folded_batchnorm`."""
        return dict(dtype=self.dtype, sync_batchnorm=self.sync_batchnorm, folded_batchnorm=self.folded_batchnorm)
