"""The one rule for image scale factors: training's random scales (`data.scales`,
`make_dataset(scales=...)`) and the test-time scales of prediction, evaluation and export,
and the one rule for the size of a scaled image (`scaled_size`).

Importing this module does not import TensorFlow (`benchmarks/ablation_jax.py` runs on JAX
without it).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from spgnet_keras.backends import is_tensorflow_tensor
from spgnet_keras.constants import MAX_SCALE
from spgnet_keras.errors import InvalidInputError

TRAINING_SCALES: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
"""Random-scale factors of the SPGNet paper's training: [0.5, 2.0] in steps of 0.25."""


def check_scales(scales, name: str = "scales") -> tuple[float, ...]:
    """Returns `scales` as a tuple of floats; ValueError naming `name` unless it holds at
    least one number and every number is in `(0, MAX_SCALE]` (the paper's largest is 2.0)."""
    if isinstance(scales, numbers.Real) and not isinstance(scales, bool):
        scales = (scales,)
    try:
        scales = tuple(scales)
    except TypeError:
        raise InvalidInputError(f"`{name}` must be a sequence of positive numbers, got {scales!r}.") from None
    if not scales:
        raise InvalidInputError(f"`{name}` must contain at least one scale.")
    for scale in scales:
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale <= 0:
            raise InvalidInputError(f"`{name}` must be positive numbers, got {scale!r}.")
        if scale > MAX_SCALE:
            raise InvalidInputError(
                f"`{name}` must be at most {MAX_SCALE} (spgnet_keras.constants.MAX_SCALE; the paper's "
                f"largest is 2.0), got {scale!r}."
            )
    return tuple(float(s) for s in scales)


def scaled_size(size, scale):
    """The size of an image of `size` scaled by `scale`: `round(side * scale)` per side, at least 1.

    The product is taken in float32 and rounded half to even (`tf.round`, `np.round`), as
    training's random scale (`spgnet_keras.data.augment.random_scale`), the test-time scales
    (`spgnet_keras.multiscale`) and the size checks of `spgnet_keras.inference` resize.
    TensorFlow tensors (in a `tf.data` map or a `tf.function`) get TensorFlow ops; anything
    else NumPy, with the same float32 arithmetic, so both give the same sizes.

    Args:
        size: `(height, width)`. Python or NumPy ints, or an integer TensorFlow tensor `[2]`
            (e.g. `tf.shape(image)[:2]`).
        scale: float, or a scalar TensorFlow tensor.

    Returns:
        A tuple of Python ints for NumPy input; an int32 tensor `[2]` for TensorFlow input.

    Example:

    ```python
    scaled_size((1024, 2048), 0.75)  # (768, 1536)
    scaled_size((5, 3), 0.5)  # (2, 2): 2.5 rounds to 2, 1.5 to 2
    ```
    """
    if is_tensorflow_tensor(size) or is_tensorflow_tensor(scale):
        import tensorflow as tf  # already imported by whoever made the tensor

        sides = tf.round(tf.cast(size, tf.float32) * tf.cast(scale, tf.float32))
        return tf.maximum(tf.cast(sides, tf.int32), 1)
    sides = np.round(np.asarray(size, np.float32) * np.float32(scale))
    return tuple(max(int(side), 1) for side in sides.reshape(-1))
