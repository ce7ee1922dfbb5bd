"""Multi-scale + flip test-time augmentation (paper Sec 4.2: scales 0.75-2.0 and flip),
one implementation for `spgnet_keras.inference` (eager) and the exported SavedModel (graph)."""

import tensorflow as tf

from spgnet_keras.scales import scaled_size


def multi_scale_probabilities(logits_fn, images, scales=(1.0,), flip=False):
    """Softmax probabilities averaged over `scales` and (with `flip`) mirrored images.

    Each pass resizes the images (bilinear, `round(side * scale)` as in training), runs
    `logits_fn`, mirrors a flipped pass back, takes the softmax, and resizes the
    probabilities to the input size (bilinear: a convex combination, so they stay
    distributions); the passes are averaged with equal weight.

    Args:
        logits_fn: maps float32 RGB 0-255 images `[B, h, w, 3]` to float32 logits (or
            log-probabilities) `[B, h, w, C]` at the same size.
        images: float32 RGB 0-255 `[B, H, W, 3]`.
        scales: Python floats.
        flip: also average the horizontally mirrored images.

    Returns:
        float32 `[B, H, W, C]` probabilities.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    size = tf.shape(images)[1:3]
    total, passes = None, 0
    for scale in scales:
        scaled = images if scale == 1.0 else tf.image.resize(images, scaled_size(size, scale), method="bilinear")
        for mirrored in (False, True) if flip else (False,):
            logits = logits_fn(tf.reverse(scaled, axis=[2]) if mirrored else scaled)
            probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
            if mirrored:
                probabilities = tf.reverse(probabilities, axis=[2])
            if scale != 1.0:
                probabilities = tf.image.resize(probabilities, size, method="bilinear")
            total = probabilities if total is None else total + probabilities
            passes += 1
    return total if passes == 1 else total / float(passes)
