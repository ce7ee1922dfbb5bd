"""PadToMultiple and CropLike: how SPGNet takes any input size (pad to a multiple of the
output stride 32 inside the model, crop every output back)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from spgnet_keras.layers import CropLike, PadToMultiple


def rand(*shape, seed=0):
    # Values away from 0, so that zero padding cannot be mistaken for data.
    return np.random.default_rng(seed).uniform(1, 2, size=shape).astype("float32")


@pytest.mark.parametrize(
    "size, padded",
    [((45, 70), (64, 96)), ((64, 96), (64, 96)), ((1, 33), (32, 64)), ((32, 31), (32, 32))],
)
def test_pad_to_multiple_pads_zeros_at_bottom_right(size, padded):
    x = rand(2, *size, 3)
    y = keras.ops.convert_to_numpy(PadToMultiple(32)(x))
    assert y.shape == (2, *padded, 3)
    np.testing.assert_array_equal(y[:, : size[0], : size[1]], x)
    assert not y[:, size[0]:].any() and not y[:, :, size[1]:].any()


def test_pad_to_multiple_of_other_multiples():
    x = rand(1, 5, 9, 2)
    assert PadToMultiple(4)(x).shape == (1, 8, 12, 2)
    np.testing.assert_array_equal(PadToMultiple(1)(x), x)


@pytest.mark.parametrize("size", [(45, 70), (64, 96), (1, 1)])
def test_crop_like_undoes_pad_to_multiple(size):
    x = rand(2, *size, 3)
    padded = PadToMultiple(32)(x)
    np.testing.assert_array_equal(CropLike()([padded, x]), x)
    # The reference only gives the size: its channels may differ.
    features = rand(2, padded.shape[1], padded.shape[2], 7, seed=1)
    cropped = CropLike()([features, x])
    np.testing.assert_array_equal(cropped, features[:, : size[0], : size[1]])


@pytest.mark.parametrize("size", [(45, 70), (64, 96), (1, 33)])
def test_compute_output_shape_is_the_real_output_shape(size):
    x, features = rand(2, *size, 3), rand(2, 64, 96, 5)
    pad, crop = PadToMultiple(32), CropLike()
    assert pad.compute_output_shape(x.shape) == tuple(pad(x).shape)
    assert crop.compute_output_shape([features.shape, x.shape]) == tuple(crop([features, x]).shape)


def test_symbolic_shapes_with_unknown_sizes():
    """In a functional model: known sides padded, unknown ones (and the batch) left None."""
    pad, crop = PadToMultiple(32), CropLike()
    assert pad.compute_output_shape((None, None, 70, 3)) == (None, None, 96, 3)
    image = keras.Input(shape=(45, None, 3))
    padded = pad(image)
    assert tuple(padded.shape) == (None, 64, None, 3)
    assert tuple(crop([padded, image]).shape) == (None, 45, None, 3)


def test_pad_and_crop_trace_with_unknown_sizes():
    """One traced function (height/width None, as an exported model) pads and crops every size."""
    pad, crop = PadToMultiple(32), CropLike()
    fn = tf.function(lambda x: (pad(x), crop([pad(x), x])),
                     input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    for size, padded in (((45, 70), (64, 96)), ((96, 33), (96, 64))):
        x = rand(1, *size, 3)
        y, back = fn(x)
        assert tuple(y.shape) == (1, *padded, 3)
        np.testing.assert_array_equal(back, x)


@pytest.mark.parametrize("multiple", [0, -32, 2.5, True, "32", None])
def test_pad_to_multiple_rejects_bad_multiples(multiple):
    with pytest.raises(ValueError, match="multiple"):
        PadToMultiple(multiple)


def test_pad_and_crop_hold_no_weights():
    """Nothing to train or save (the shared layer checks: tests/layers/test_layer_contract.py)."""
    pad, crop = PadToMultiple(8, name="pad8"), CropLike()
    pad(rand(2, 9, 16, 2))
    crop([rand(1, 64, 96, 4), rand(1, 45, 70, 3)])
    assert not pad.weights and not crop.weights
    assert PadToMultiple.from_config(pad.get_config()).multiple == 8
