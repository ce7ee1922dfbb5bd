"""Small building blocks shared by the SPGNet layers."""

import keras

# PyTorch-style BatchNorm defaults (the paper trained with Inplace-ABN in PyTorch):
# running averages updated with weight 0.1 per step, epsilon 1e-5.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def batch_norm(name=None, synchronized=False, dtype=None):
    """A BatchNormalization layer with the package's defaults.

    Args:
        name: layer name.
        synchronized: if True, statistics are all-reduced across replicas under a
            `tf.distribute` strategy (synchronized BatchNorm, paper Sec 4.2).
        dtype: dtype policy, forwarded to the layer.
    """
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        synchronized=synchronized,
        name=name,
        dtype=dtype,
    )


def conv(filters, kernel_size, strides=1, use_bias=False, name=None, dtype=None):
    """A 'same'-padded Conv2D with He-normal initialisation."""
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=use_bias,
        kernel_initializer="he_normal",
        name=name,
        dtype=dtype,
    )


def check_positive_int(value, name):
    """Raises ValueError unless `value` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return value


def spatial_shape(shape):
    """(height, width) part of a channels-last 4D shape."""
    return tuple(shape[1:3])
