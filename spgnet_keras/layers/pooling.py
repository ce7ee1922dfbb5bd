"""Image-level context pooling: global in training, optionally crop-sized at test time.

SPGNet's decoder starts from a global average pooling of the encoder output (Sec 3.2),
and the SE transition (Table 4) squeezes by one. The paper thanks the In-Place ABN
authors for a discussion of "the global pooling kernel size": their segmentation code
pools globally in training and, at test time, averages over a fixed window the size of
the training crop's feature map (`avg_pool2d(kernel=min(window, size), stride=1)`, then
replicate padding back to the map's size), so that a large test image sees context of
the extent the model was trained with. `test_pooling="crop"` offers that; "global" (the
default) pools globally at test time as in training.
"""

import math

import keras
from keras import ops

from spgnet_keras.constants import OUTPUT_STRIDE
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.layers.common import check_positive_int

POOLING_MODES = ("global", "crop")


def crop_pool_size(crop_size, stride):
    """Size of a training crop's feature map at `stride` (the model pads inputs to multiples of 32)."""
    return tuple(math.ceil(side / OUTPUT_STRIDE) * OUTPUT_STRIDE // stride for side in crop_size)


def check_pooling(mode, crop_size):
    """ValueError unless `mode` is "global" or "crop" with `crop_size` (height, width) of positive ints.

    Returns:
        The crop size as a tuple (None for "global").
    """
    if mode not in POOLING_MODES:
        raise InvalidInputError(f"`test_pooling` must be one of {POOLING_MODES}, got {mode!r}.")
    if mode == "global":
        return None
    if crop_size is None or len(tuple(crop_size)) != 2:
        raise InvalidInputError(
            f'`test_pooling="crop"` needs `test_pooling_crop`, the training crop (height, width) in pixels, '
            f"got {crop_size!r}."
        )
    return tuple(check_positive_int(side, "test_pooling_crop") for side in crop_size)


def crop_sized_average(x, pool_size):
    """In-Place ABN's test-time pooling of (B, H, W, C) `x`: at each position, the mean over a
    `pool_size` window (clipped to the map) shifted to lie inside the map.

    Equal to a stride-1 'valid' average pool of kernel min(pool_size, (H, W)) followed by
    replicate padding back to (H, W), which is how it is computed when H and W are known
    while tracing (eager calls, fixed-shape exports: one pooling op that CPU runtimes run
    fast; cumulative sums were 6 % of an int8 OpenVINO call, docs/benchmarks.md "Serving
    profile"). For a map of unknown size (a SavedModel taking any size) the kernel is
    only known at run time, so it comes from cumulative sums.
    """
    dtype = x.dtype
    x = ops.cast(x, "float32")
    height, width = ops.shape(x)[1:3]
    if isinstance(height, int) and isinstance(width, int):
        x = _pooled_window_mean(x, (min(pool_size[0], height), min(pool_size[1], width)))
    else:
        for axis, window in zip((1, 2), pool_size):
            x = _window_mean(x, axis, window)
    return ops.cast(x, dtype)


def _pooled_window_mean(x, window):
    """crop_sized_average of a map of known size: the 'valid' average pool, then each
    position takes the window shifted inside the map (replicate padding, as a gather)."""
    pooled = ops.average_pool(x, window, strides=1, padding="valid")
    for axis, (size, side) in enumerate(zip(ops.shape(x)[1:3], window), start=1):
        starts = [min(max(k - (side - 1) // 2, 0), size - side) for k in range(size)]
        pooled = ops.take(pooled, starts, axis=axis)
    return pooled


def _window_mean(x, axis, window):
    size = ops.shape(x)[axis]
    window = ops.minimum(window, size)
    pad_width = [[0, 0]] * 4
    pad_width[axis] = [1, 0]
    cumulative = ops.pad(ops.cumsum(x, axis=axis), pad_width)  # cumulative[k] = sum of the first k
    start = ops.clip(ops.arange(size) - (window - 1) // 2, 0, size - window)
    total = ops.take(cumulative, start + window, axis=axis) - ops.take(cumulative, start, axis=axis)
    return total / ops.cast(window, x.dtype)


@keras.saving.register_keras_serializable(package="spgnet_keras")
class ContextPooling(keras.layers.Layer):
    """Average pooling of image-level context; global in training, crop-sized at test.

    In training (or with `mode="global"`) the mean over H, W: (B, 1, 1, C). At inference
    with `mode="crop"`, `crop_sized_average(x, pool_size)`: (B, H, W, C).

    Args:
        mode: str. "global" or "crop".
        pool_size: tuple of 2 ints. (height, width) window in feature-map positions, for "crop".
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    ```python
    pooling = ContextPooling("crop", pool_size=(16, 32))
    context = pooling(features, training=False)  # (B, H, W, C): crop-sized means
    ```
    """

    def __init__(self, mode="global", pool_size=None, **kwargs):
        super().__init__(**kwargs)
        if mode not in POOLING_MODES:
            raise InvalidInputError(f"`mode` must be one of {POOLING_MODES}, got {mode!r}.")
        if mode == "crop":
            if pool_size is None or len(tuple(pool_size)) != 2:
                raise InvalidInputError(f'`mode="crop"` needs `pool_size` (height, width), got {pool_size!r}.')
            pool_size = tuple(check_positive_int(side, "pool_size") for side in pool_size)
        self.mode = mode
        self.pool_size = pool_size

    def call(self, inputs, training=None):
        if self.mode == "global" or training:
            return ops.mean(inputs, axis=(1, 2), keepdims=True)
        return crop_sized_average(inputs, self.pool_size)

    def compute_output_shape(self, input_shape):
        """The inference shape (in "crop" mode training gives (B, 1, 1, C), which broadcasts alike)."""
        if self.mode == "global":
            return (input_shape[0], 1, 1, input_shape[-1])
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode, pool_size=None if self.pool_size is None else list(self.pool_size))
        return config
