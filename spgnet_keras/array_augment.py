"""`spgnet_keras.data.augment.augment_pair`'s scale / flip / crop on NumPy arrays, TensorFlow-free.

For training loops without `tf.data` (`benchmarks/ablation_jax.py` on a JAX machine). The
same rule: a scale drawn uniformly from `scales` (`scales.scaled_size`), then a horizontal
flip with probability 0.5, then a random crop of the scaled image padded at the bottom/right
with the ImageNet mean colour and the ignore label; image bilinear and mask nearest
neighbour with half-pixel centres, as `tf.image.resize`. Only the crop's pixels are
interpolated, which gives the values that resizing the whole image and then cropping gives
(tests/test_array_augment.py compares it with `augment.py`'s transforms). The draws come
from a NumPy generator, not from `tf.random`'s stateless seeds, so the same seed does not
give the same example as `augment_pair`.
"""

from __future__ import annotations

import numpy as np

from spgnet_keras.constants import IGNORE_LABEL, IMAGENET_MEAN
from spgnet_keras.scales import scaled_size

__all__ = ["augment_example", "augment_window", "crop_window"]


def bilinear_taps(positions, in_size, out_size):
    """(lower, upper, weight of upper) source indices of output `positions` of a 1-D bilinear
    resize from `in_size` to `out_size` with half-pixel centres (tf.image.resize, no antialias)."""
    source = (positions.astype(np.float32) + 0.5) * np.float32(in_size / out_size) - 0.5
    floor = np.floor(source)
    lower = np.clip(floor, 0, in_size - 1).astype(np.intp)
    upper = np.clip(floor + 1, 0, in_size - 1).astype(np.intp)
    return lower, upper, (source - floor).astype(np.float32)


def nearest_taps(positions, in_size, out_size):
    """Source indices of a 1-D nearest-neighbour resize with half-pixel centres (tf.image.resize)."""
    source = np.floor((positions.astype(np.float32) + 0.5) * np.float32(in_size / out_size))
    return np.minimum(source, in_size - 1).astype(np.intp)


def crop_window(scaled_hw, crop_hw, rng):
    """(top, left) of a random crop of the scaled image padded at the bottom/right to the crop."""
    top = int(rng.integers(0, max(scaled_hw[0], crop_hw[0]) - crop_hw[0] + 1))
    left = int(rng.integers(0, max(scaled_hw[1], crop_hw[1]) - crop_hw[1] + 1))
    return top, left


def augment_window(image, label, scaled_hw, flipped, top, left, crop_hw):
    """The crop at `(top, left)` of `image`/`label` resized to `scaled_hw`, flipped, padded.

    Args:
        image: uint8 or float `[H, W, 3]`.
        label: integer `[H, W]`.
        scaled_hw: `(height, width)` the image is resized to.
        flipped: Whether the scaled image is mirrored left-right (before the padding).
        top: First row of the crop in the scaled, padded image.
        left: First column of the crop.
        crop_hw: `(height, width)` of the output.

    Returns:
        float32 `[h, w, 3]` image (0-255, the padding the ImageNet mean colour) and the
        label in its dtype (padding the ignore label).
    """
    height, width = label.shape
    rows = np.arange(top, top + crop_hw[0])
    cols = np.arange(left, left + crop_hw[1])
    inside_rows, inside_cols = rows < scaled_hw[0], cols < scaled_hw[1]
    if flipped:  # the flip is of the scaled image; padding is added after it, at the right
        cols = scaled_hw[1] - 1 - cols
    rows, cols = np.minimum(rows, scaled_hw[0] - 1), np.clip(cols, 0, scaled_hw[1] - 1)

    row_low, row_high, row_weight = bilinear_taps(rows, height, scaled_hw[0])
    col_low, col_high, col_weight = bilinear_taps(cols, width, scaled_hw[1])
    source = image.astype(np.float32)
    left_cols, right_cols = source[:, col_low], source[:, col_high]
    across = left_cols + (right_cols - left_cols) * col_weight[None, :, None]
    top_rows, bottom_rows = across[row_low], across[row_high]
    out_image = top_rows + (bottom_rows - top_rows) * row_weight[:, None, None]
    out_label = label[nearest_taps(rows, height, scaled_hw[0])][:, nearest_taps(cols, width, scaled_hw[1])]

    inside = inside_rows[:, None] & inside_cols[None, :]
    out_image[~inside] = np.asarray(IMAGENET_MEAN, np.float32)
    out_label = np.where(inside, out_label, IGNORE_LABEL).astype(label.dtype)
    return out_image, out_label


def augment_example(image, label, rng, crop_hw, scales, flip=True):
    """One training example: random scale, horizontal flip, random crop (augment.augment_pair).

    Args:
        image: uint8 `[H, W, 3]`.
        label: uint8 `[H, W]`.
        rng: `np.random.Generator` (the draws: scale, flip, top, left).
        crop_hw: `(height, width)` of the output.
        scales: Scale factors drawn uniformly.
        flip: Whether to flip with probability 0.5.

    Returns:
        float32 `[h, w, 3]` image (0-255, the padding the ImageNet mean colour) and uint8
        `[h, w]` label (padding 255).
    """
    scale = scales[int(rng.integers(0, len(scales)))] if scales else 1.0
    scaled_hw = scaled_size(label.shape, scale)
    flipped = bool(flip) and rng.random() < 0.5
    top, left = crop_window(scaled_hw, crop_hw, rng)
    return augment_window(image, label, scaled_hw, flipped, top, left, crop_hw)
