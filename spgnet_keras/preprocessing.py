"""The package's one input convention: RGB images in [0, 255], padded with the mean colour.

`SPGNet` normalises its own input (its first layer, `keras.layers.Rescaling` by the
ImageNet mean/std of `spgnet_keras.constants`), so the data pipeline, inference,
evaluation, visualisation and every export feed it 0-255 RGB. Where an image must grow to
a multiple of the output stride or to a crop, it is padded at the bottom/right with the
ImageNet mean colour, which the model normalises to 0 (what zero-padding a normalised
image did).
"""

import tensorflow as tf

from spgnet_keras.constants import IMAGENET_MEAN

# The value that padded_batch puts into image padding: never a 0-255 pixel, and replaced
# with the mean colour by `fill_batch_padding`.
BATCH_PAD_SENTINEL = -1.0


def pad_bottom_right(image, height, width):
    """Pads `[..., H, W, 3]` 0-255 images at the bottom/right with the mean colour up to
    *at least* `height x width` (sides already large enough are left alone)."""
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    rank = image.shape.rank
    pad_h = tf.maximum(height - shape[rank - 3], 0)
    pad_w = tf.maximum(width - shape[rank - 2], 0)
    paddings = [[0, 0]] * (rank - 3) + [[0, pad_h], [0, pad_w], [0, 0]]
    inside = tf.pad(tf.ones_like(image[..., :1]), paddings)
    mean = tf.constant(IMAGENET_MEAN, image.dtype)
    return tf.pad(image, paddings) + (1 - inside) * mean


def fill_batch_padding(images):
    """Replaces `padded_batch`'s `BATCH_PAD_SENTINEL` pixels with the mean colour."""
    padded = tf.reduce_all(tf.equal(images, BATCH_PAD_SENTINEL), axis=-1, keepdims=True)
    return tf.where(padded, tf.constant(IMAGENET_MEAN, images.dtype), images)
