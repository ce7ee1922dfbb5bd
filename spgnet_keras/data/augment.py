"""Seeded geometric augmentation applied identically to an image and its label mask.

All functions work on one unbatched example: `image` float32 `[H, W, 3]` RGB in
[0, 255] (padding uses the ImageNet mean colour, `spgnet_keras.preprocessing`) and
`mask` int32 `[H, W]`. Randomness comes only from *stateless* ops driven by an explicit
`seed` (an int32/int64 tensor of shape `[2]`), so the same seed always gives the same
output, whatever the thread scheduling of a parallel `tf.data` map.

Why not `keras.layers.RandomCrop` / `RandomFlip` / `RandomZoom`: they accept
`{"images", "segmentation_masks"}` dicts, but (checked in keras 3.15 source)
`RandomCrop.transform_segmentation_masks` reuses `transform_images`, which under the
dynamic shapes of `tf.data` always calls a *bilinear* resize, i.e. interpolates label
ids into invented values; when the input is smaller than the crop it resizes instead of
padding with the ignore label; and the layers draw randomness from a stateful
`SeedGenerator`, so per-element reproducibility under a parallel map is not guaranteed.
The hand-written version below slices the *same* window out of image and mask, resizes
the image bilinearly and the mask with nearest neighbour on the same sampling grid
(`tf.image.resize` uses half-pixel centres for both), and never changes label values
except for padding with the ignore label.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from spgnet_keras import preprocessing
from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.scales import TRAINING_SCALES, scaled_size

SCALES = TRAINING_SCALES  # spgnet_keras.data's name of the paper's random scales


def split_seed(seed: tf.Tensor, num: int) -> tf.Tensor:
    """Derives `num` independent stateless seeds from one seed.

    Args:
        seed: Integer tensor of shape `[2]`.
        num: Number of seeds wanted.

    Returns:
        int64 tensor of shape `[num, 2]`.
    """
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num)


def resize_pair(
    image: tf.Tensor, mask: tf.Tensor, size: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Resizes image (bilinear) and mask (nearest neighbour) to the same `size`.

    Args:
        image: float32 `[H, W, C]`.
        mask: integer `[H, W]`.
        size: int32 `[2]` target `(height, width)`.

    Returns:
        `(image, mask)` of spatial size `size`; the mask keeps its dtype and values.
    """
    image = tf.image.resize(image, size, method=tf.image.ResizeMethod.BILINEAR)
    mask = tf.image.resize(mask[..., tf.newaxis], size,
                           method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)[..., 0]
    return image, mask


def random_scale(
    image: tf.Tensor,
    mask: tf.Tensor,
    seed: tf.Tensor,
    scales: Sequence[float] = SCALES,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Rescales image and mask by a factor drawn uniformly from `scales`.

    Args:
        image: float32 `[H, W, C]`.
        mask: integer `[H, W]`.
        seed: Stateless seed, shape `[2]`.
        scales: Candidate scale factors (the paper's set by default).

    Returns:
        The rescaled `(image, mask)`.
    """
    scales_tensor = tf.constant(list(scales), tf.float32)
    index = tf.random.stateless_uniform(
        [], seed, minval=0, maxval=len(scales), dtype=tf.int32)
    size = scaled_size(tf.shape(image)[:2], scales_tensor[index])
    return resize_pair(image, mask, size)


def random_horizontal_flip(
    image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, probability: float = 0.5
) -> tuple[tf.Tensor, tf.Tensor]:
    """Mirrors image and mask left-right together with the given probability.

    Args:
        image: `[H, W, C]`.
        mask: `[H, W]`.
        seed: Stateless seed, shape `[2]`.
        probability: Chance of flipping.

    Returns:
        `(image, mask)`, both flipped or both unchanged.
    """
    flip = tf.random.stateless_uniform([], seed) < probability
    image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    mask = tf.cond(flip, lambda: tf.reverse(mask, axis=[1]), lambda: mask)
    return image, mask


def pad_bottom_right(
    image: tf.Tensor,
    mask: tf.Tensor,
    height: tf.Tensor,
    width: tf.Tensor,
    mask_value: int = IGNORE_LABEL,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Pads image and mask at the bottom/right up to *at least* `(height, width)`.

    Never crops: sides already large enough are left alone. Padding at the bottom/right
    keeps pixel `(0, 0)` in place, so predictions are un-padded by slicing
    `[:H, :W]`.

    Args:
        image: `[H, W, 3]` 0-255; padded with the ImageNet mean colour.
        mask: `[H, W]`; padded with `mask_value` (the ignore label).
        height: Minimum output height.
        width: Minimum output width.
        mask_value: Mask pad value.

    Returns:
        The padded `(image, mask)`.
    """
    shape = tf.shape(mask)
    pad_h = tf.maximum(height - shape[0], 0)
    pad_w = tf.maximum(width - shape[1], 0)
    image = preprocessing.pad_bottom_right(image, shape[0] + pad_h, shape[1] + pad_w)
    mask = tf.pad(mask, [[0, pad_h], [0, pad_w]], constant_values=tf.cast(mask_value, mask.dtype))
    return image, mask


def pad_to_multiple(
    image: tf.Tensor,
    mask: tf.Tensor,
    multiple: int,
    mask_value: int = IGNORE_LABEL,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Pads image and mask at the bottom/right so both sides are multiples of `multiple`.

    Args:
        image: `[H, W, C]`.
        mask: `[H, W]`.
        multiple: Size divisor, e.g. `OUTPUT_STRIDE` (32).
        mask_value: Mask pad value (ignore label).

    Returns:
        The padded `(image, mask)`.
    """
    shape = tf.shape(mask)
    target = (shape + multiple - 1) // multiple * multiple
    return pad_bottom_right(image, mask, target[0], target[1], mask_value)


def random_crop(
    image: tf.Tensor,
    mask: tf.Tensor,
    crop_size: tuple[int, int],
    seed: tf.Tensor,
    mask_value: int = IGNORE_LABEL,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Cuts the same random `crop_size` window out of image and mask.

    Inputs smaller than the crop are first padded at the bottom/right (image with the
    mean colour, mask with the ignore label), as in mmsegmentation / DeepLab.

    Args:
        image: `[H, W, C]`.
        mask: `[H, W]`.
        crop_size: `(height, width)` of the output.
        seed: Stateless seed, shape `[2]`.
        mask_value: Mask pad value.

    Returns:
        `(image, mask)` with static spatial shape `crop_size`.
    """
    crop_h, crop_w = int(crop_size[0]), int(crop_size[1])
    image, mask = pad_bottom_right(image, mask, crop_h, crop_w, mask_value)
    shape = tf.shape(mask)
    top_seed, left_seed = tf.unstack(split_seed(seed, 2))
    top = tf.random.stateless_uniform(
        [], top_seed, minval=0, maxval=shape[0] - crop_h + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform(
        [], left_seed, minval=0, maxval=shape[1] - crop_w + 1, dtype=tf.int32)
    image = image[top:top + crop_h, left:left + crop_w, :]
    mask = mask[top:top + crop_h, left:left + crop_w]
    image.set_shape([crop_h, crop_w, image.shape[-1]])
    mask.set_shape([crop_h, crop_w])
    return image, mask


def augment_pair(
    image: tf.Tensor,
    mask: tf.Tensor,
    seed: tf.Tensor,
    crop_size: tuple[int, int] | None,
    scales: Sequence[float] | None = SCALES,
    flip: bool = True,
) -> tuple[tf.Tensor, tf.Tensor]:
    """SPGNet training augmentation: random scale, random horizontal flip, random crop.

    Args:
        image: float32 `[H, W, 3]` RGB in [0, 255].
        mask: int32 `[H, W]`.
        seed: Stateless seed, shape `[2]`; equal seeds give equal outputs.
        crop_size: `(height, width)` of the output, or `None` for no crop.
        scales: Scale factors to draw from; `None` or `(1.0,)` disables scaling.
        flip: Whether to apply a random horizontal flip.

    Returns:
        The augmented `(image, mask)`.
    """
    scale_seed, flip_seed, crop_seed = tf.unstack(split_seed(seed, 3))
    if scales and tuple(scales) != (1.0,):
        image, mask = random_scale(image, mask, scale_seed, scales)
    if flip:
        image, mask = random_horizontal_flip(image, mask, flip_seed)
    if crop_size is not None:
        image, mask = random_crop(image, mask, crop_size, crop_seed)
    return image, mask
