"""Bilinear resize to the spatial size of a reference tensor."""

import keras
from keras import ops

from spgnet_keras.errors import InvalidInputError


@keras.saving.register_keras_serializable(package="spgnet_keras")
class ResizeLike(keras.layers.Layer):
    """Resizes `inputs[0]` bilinearly to the height and width of `inputs[1]`.

    On the TensorFlow backend, `tf.image.resize` with the size read from
    `tf.shape(reference)` traces with unknown height/width; Keras' bilinear
    `UpSampling2D` and `keras.ops.image.resize` with symbolic sizes do not (they raise
    `OperatorNotAllowedInGraphError` since keras-team/keras PR #22079), so exporting a `(None, None, 3)` model needs this path. Other
    backends (JAX; tested in tests/models/test_backends.py) trace with concrete shapes: whole
    factors use `upsample_by_integer_factors`, other sizes `keras.ops.image.resize`.
    Half-pixel centres, i.e. PyTorch's `align_corners=False`, on every backend.

    A 1x1 input (an image-level feature after global pooling) is broadcast instead of
    resized: identical values, no resize kernel.

    Args:
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    ```python
    upsampled = ResizeLike()([logits, image])  # logits at the image's height and width
    ```
    """

    def call(self, inputs):
        x, reference = inputs
        if keras.backend.backend() == "tensorflow":
            return self._resize_tensorflow(x, reference)
        height, width = ops.shape(reference)[1:3]
        if x.shape[1] == 1 and x.shape[2] == 1:
            return ops.broadcast_to(x, (ops.shape(x)[0], height, width, ops.shape(x)[3]))
        if height % x.shape[1] == 0 and width % x.shape[2] == 0:
            resized = upsample_by_integer_factors(ops.cast(x, "float32"), height // x.shape[1], width // x.shape[2])
        else:
            resized = ops.image.resize(x, (height, width), interpolation="bilinear", antialias=False)
        return ops.cast(resized, self.compute_dtype)

    def _resize_tensorflow(self, x, reference):
        import tensorflow as tf

        size = tf.shape(reference)[1:3]
        if x.shape[1] == 1 and x.shape[2] == 1:
            batch_and_channels = tf.shape(x)
            target = tf.stack([batch_and_channels[0], size[0], size[1], batch_and_channels[3]])
            return tf.broadcast_to(x, target)
        resized = tf.image.resize(x, size, method="bilinear")
        return tf.cast(resized, self.compute_dtype)

    def compute_output_shape(self, input_shapes):
        x_shape, reference_shape = input_shapes
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])


def upsample_by_integer_factors(x, height_factor, width_factor):
    """Half-pixel bilinear upsampling of NHWC `x` by whole factors, as a few slices and adds.

    `jax.image.resize` (behind `keras.ops.image.resize` on JAX) contracts each axis with a
    dense (input x output) weight matrix: upsampling stride-4 logits to 1024x2048 costs more
    multiply-adds than a ResNet-18 encoder (docs/benchmarks.md, GPU section). For a whole
    factor s, output pixel s*i + k lies at i + d with d = (k + 0.5) / s - 0.5, between x[i]
    and one neighbour (edges clamped): the same values as `tf.image.resize` bilinear.
    """
    return _upsample_axis(_upsample_axis(x, height_factor, axis=1), width_factor, axis=2)


def _upsample_axis(x, factor, axis):
    if factor == 1:
        return x
    size = x.shape[axis]
    first, last = _take(x, 0, 1, axis), _take(x, size - 1, size, axis)
    previous = ops.concatenate([first, _take(x, 0, size - 1, axis)], axis=axis)
    following = ops.concatenate([_take(x, 1, size, axis), last], axis=axis)
    phases = []
    for k in range(factor):
        offset = (k + 0.5) / factor - 0.5
        if offset < 0:
            phases.append((1 + offset) * x - offset * previous)
        elif offset > 0:
            phases.append((1 - offset) * x + offset * following)
        else:
            phases.append(x)
    stacked = ops.stack(phases, axis=axis + 1)
    shape = list(ops.shape(x))
    shape[axis] = size * factor
    return ops.reshape(stacked, shape)


def _take(x, start, stop, axis):
    return x[:, start:stop] if axis == 1 else x[:, :, start:stop]


@keras.saving.register_keras_serializable(package="spgnet_keras")
class PadToMultiple(keras.layers.Layer):
    """Pads NHWC `inputs` with zeros at the bottom/right to sides that are multiples of
    `multiple` (SPGNet's output stride, 32), so the model takes images of any size.

    SPGNet applies it after normalising its input, where 0 is the ImageNet mean colour
    (what the paper's framework pads test images with); `CropLike` cuts the logits back.

    Args:
        multiple: int. The sides are padded to multiples of this.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    ```python
    padded = PadToMultiple(32)(np.ones((1, 45, 70, 3), "float32"))  # (1, 64, 96, 3)
    ```
    """

    def __init__(self, multiple, **kwargs):
        super().__init__(**kwargs)
        if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
            raise InvalidInputError(f"`multiple` must be a positive integer, got {multiple!r}.")
        self.multiple = multiple

    def call(self, inputs):
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            shape = tf.shape(inputs)
            pad_h = -shape[1] % self.multiple
            pad_w = -shape[2] % self.multiple
            return tf.pad(inputs, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])
        height, width = inputs.shape[1:3]
        return ops.pad(inputs, [[0, 0], [0, -height % self.multiple], [0, -width % self.multiple], [0, 0]])

    def compute_output_shape(self, input_shape):
        def padded(size):
            return None if size is None else -(-size // self.multiple) * self.multiple

        return (input_shape[0], padded(input_shape[1]), padded(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="spgnet_keras")
class CropLike(keras.layers.Layer):
    """Keeps the top-left `H x W` of `inputs[0]`, `H x W` being the size of `inputs[1]`
    (undoes `PadToMultiple`).

    Args:
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    ```python
    image = np.ones((1, 45, 70, 3), "float32")
    cropped = CropLike()([PadToMultiple(32)(image), image])  # (1, 45, 70, 3)
    ```
    """

    def call(self, inputs):
        x, reference = inputs
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            size = tf.shape(reference)
            return x[:, : size[1], : size[2]]
        return x[:, : reference.shape[1], : reference.shape[2]]

    def compute_output_shape(self, input_shapes):
        x_shape, reference_shape = input_shapes
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])
