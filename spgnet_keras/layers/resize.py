"""Bilinear resize to the spatial size of a reference tensor."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="spgnet_keras")
class ResizeLike(keras.layers.Layer):
    """Resizes `inputs[0]` bilinearly to the height and width of `inputs[1]`.

    On the TensorFlow backend, `tf.image.resize` with the size read from
    `tf.shape(reference)` traces with unknown height/width; Keras' bilinear
    `UpSampling2D` and `keras.ops.image.resize` with symbolic sizes do not (see
    design/pitfalls.md), so exporting a `(None, None, 3)` model needs this path. Other
    backends (JAX, PyTorch) trace with concrete shapes and use `keras.ops.image.resize`.
    Half-pixel centres, i.e. PyTorch's `align_corners=False`, on every backend.

    A 1x1 input (an image-level feature after global pooling) is broadcast instead of
    resized: identical values, no resize kernel.
    """

    def call(self, inputs):
        x, reference = inputs
        if keras.backend.backend() == "tensorflow":
            return self._resize_tensorflow(x, reference)
        height, width = ops.shape(reference)[1:3]
        if x.shape[1] == 1 and x.shape[2] == 1:
            return ops.broadcast_to(x, (ops.shape(x)[0], height, width, ops.shape(x)[3]))
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
