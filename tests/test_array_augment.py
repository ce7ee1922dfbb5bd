"""spgnet_keras.array_augment (NumPy, TensorFlow-free) makes the examples of augment.py's
transforms for the same draws: resize the whole image, flip, pad, crop."""

import numpy as np
import pytest
import tensorflow as tf

from spgnet_keras.array_augment import augment_example, augment_window
from spgnet_keras.data.augment import pad_bottom_right, resize_pair
from spgnet_keras.scales import scaled_size


def tensorflow_example(image, label, scaled_hw, flipped, top, left, crop_hw):
    """augment_pair's steps with the draws given (random_scale, random_horizontal_flip, random_crop)."""
    image, mask = resize_pair(tf.constant(image, tf.float32), tf.constant(label, tf.int32), scaled_hw)
    if flipped:
        image, mask = tf.reverse(image, axis=[1]), tf.reverse(mask, axis=[1])
    image, mask = pad_bottom_right(image, mask, *crop_hw)
    return (image[top:top + crop_hw[0], left:left + crop_hw[1]].numpy(),
            mask[top:top + crop_hw[0], left:left + crop_hw[1]].numpy())


@pytest.mark.parametrize("scale, flipped, top, left", [
    (1.25, False, 3, 10),   # larger than the crop in both sides
    (0.75, True, 0, 0),     # smaller than the crop: padded at the bottom/right after the flip
    (1.5, True, 17, 5),     # the last row a crop may start at (45 - 28)
    (0.5, False, 0, 0),
])
def test_numpy_window_equals_tensorflow_resize_flip_pad_crop(scale, flipped, top, left):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)
    label = rng.integers(0, 11, (30, 41)).astype(np.uint8)
    label[:4, :7] = 255
    crop_hw = (28, 36)
    scaled_hw = scaled_size(label.shape, scale)
    actual = augment_window(image, label, scaled_hw, flipped, top, left, crop_hw)
    expected = tensorflow_example(image, label, scaled_hw, flipped, top, left, crop_hw)
    # float32 lerps in the same order; 1e-3 of 255 leaves room for a different rounding of in/out.
    np.testing.assert_allclose(actual[0], expected[0], atol=1e-3)
    np.testing.assert_array_equal(actual[1], expected[1])
    assert actual[1].dtype == np.uint8


def test_example_draws_scale_flip_window_from_the_generator():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    label = rng.integers(0, 5, (30, 40)).astype(np.uint8)
    x, y = augment_example(image, label, np.random.default_rng(1), (48, 64), [1.25])
    assert x.shape == (48, 64, 3) and y.shape == (48, 64)
    assert (y[38:] == 255).all() and (y[:, 50:] == 255).all() and (y[:38, :50] < 5).all()  # 30x40 * 1.25
    flips = {augment_example(image, label, np.random.default_rng(seed), (30, 40), [1.0])[1][0, 0] == label[0, 0]
             for seed in range(8)}
    assert flips == {True, False}  # some draws flip, some do not
