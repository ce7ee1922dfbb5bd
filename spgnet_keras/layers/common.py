"""Small building blocks shared by the SPGNet layers."""

import contextlib

import keras

from spgnet_keras.errors import InvalidInputError

# PyTorch-style BatchNorm defaults (the paper trained with Inplace-ABN in PyTorch):
# running averages updated with weight 0.1 per step, epsilon 1e-5.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

_FOLDED = {"active": False}


@contextlib.contextmanager
def folded_batchnorm():
    """Layers built inside are the inference graph with BatchNorm folded into the convolutions.

    `batch_norm()` gives an `Identity` layer (same name) and every conv gets a bias, which
    holds the folded BatchNorm shift (`spgnet_keras.export.fold_batchnorm` writes the
    weights). Every conv of SPGNet is either followed by a BatchNorm or has a bias already,
    so this adds no bias that BatchNorm did not need. Used by `SPGNet(folded_batchnorm=True)`.
    """
    previous = _FOLDED["active"]
    _FOLDED["active"] = True
    try:
        yield
    finally:
        _FOLDED["active"] = previous


def batchnorm_is_folded():
    """True inside `folded_batchnorm()`."""
    return _FOLDED["active"]


def batch_norm(name=None, synchronized=False, dtype=None):
    """A BatchNormalization layer with the package's defaults (an `Identity` inside
    `folded_batchnorm()`).

    Args:
        name: layer name.
        synchronized: if True, statistics are all-reduced across replicas under a
            `tf.distribute` strategy (synchronized BatchNorm, paper Sec 4.2).
        dtype: dtype policy, forwarded to the layer.
    """
    if batchnorm_is_folded():
        return keras.layers.Identity(name=name, dtype=dtype)
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        synchronized=synchronized,
        name=name,
        dtype=dtype,
    )


def conv(filters, kernel_size, strides=1, use_bias=False, name=None, dtype=None):
    """A 'same'-padded Conv2D with He-normal initialisation (always with a bias inside
    `folded_batchnorm()`)."""
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=use_bias or batchnorm_is_folded(),
        kernel_initializer="he_normal",
        name=name,
        dtype=dtype,
    )


def check_positive_int(value, name):
    """Raises ValueError unless `value` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"`{name}` must be a positive integer, got {value!r}.")
    return value
