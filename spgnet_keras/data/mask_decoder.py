"""In-graph mask decoding of the `tf.data` pipeline: `MaskDecoder` (mask file -> int32 labels,
with the colour and label tables) and `assert_same_size` (image and mask sizes agree).

The eager counterpart, for the dataset check and evaluation, is
`spgnet_keras.data.validation.MaskReader`; both decode with `spgnet_keras.data.decoding`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.data import decoding
from spgnet_keras.data.masks import colour_lookup
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.labels import check_label_range


def _first_flagged(values: tf.Tensor, flags: tf.Tensor) -> tf.Tensor:
    """Returns the first element of `values` (`[H, W, ...]`) where `flags` is True.

    Safe to evaluate when no flag is set (returns element 0), so it can feed an Assert.
    """
    flat_flags = tf.reshape(flags, [-1])
    index = tf.argmax(tf.cast(flat_flags, tf.int32))
    flat_values = tf.reshape(values, tf.concat([[-1], tf.shape(values)[2:]], axis=0))
    return flat_values[index]


class MaskDecoder:
    """Decodes a mask file into int32 labels `[H, W]` in the graph.

    Built once per pipeline; holds the colour hash table (colour masks and palette PNGs)
    and the label lookup table (e.g. Cityscapes label id -> train id). Colours are packed
    into one int32 `r * 65536 + g * 256 + b` and looked up in a `StaticHashTable`: one
    lookup per pixel instead of comparing every pixel with all K palette colours.

    Args:
        mask_format: str. `"index"` or `"color"` (resolved, not `"auto"`).
        palette: array. `[K, 3]` class colours (colour masks, or a palette PNG's own
            palette), or None.
        ignore_colors: list of (int, int, int). Colours that mean "ignore" (255).
        unknown_color: str. `"error"` or `"ignore"` for colours not in the palette.
        label_map: array. A `[256]` label table applied after decoding, or None.
        num_classes: int. Enables the label range check, or None.

    Example:

    ```python
    decode = MaskDecoder("index", None, (), "error", None, num_classes=11)
    labels = decode(tf.constant("labels/0001.png"))  # int32 [H, W]
    ```
    """

    def __init__(
        self,
        mask_format: str,
        palette: np.ndarray | None,
        ignore_colors: Sequence[Sequence[int]],
        unknown_color: str,
        label_map: np.ndarray | None,
        num_classes: int | None,
    ):
        self.index = mask_format == "index"
        self.unknown_color = unknown_color
        self.num_classes = num_classes
        self.colour_table = None
        self.uses_colour = mask_format == "color" or palette is not None
        if self.uses_colour:
            codes, labels = colour_lookup(palette, ignore_colors)
            self.colour_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(codes, tf.int32), tf.constant(labels, tf.int32)),
                default_value=-1)
        self.label_map = None
        if label_map is not None:
            label_map = np.asarray(label_map)
            if label_map.shape != (256,):
                raise InvalidInputError(f"label_map must have shape (256,), got {label_map.shape}")
            self.label_map = tf.constant(label_map, tf.int32)

    def __call__(self, path: tf.Tensor) -> tf.Tensor:
        """Returns int32 labels `[H, W]` for the mask file at `path`."""
        decoded = decoding.decode_mask_in_graph(path, index=self.index)
        if self.uses_colour:
            labels = self._colours_to_labels(decoding.to_rgb(decoded), path)
        else:
            check = tf.debugging.Assert(
                tf.equal(tf.shape(decoded)[-1], 1),
                ["Class-index mask must be single-channel (use mask_format='color'):", path,
                 "channels:", tf.shape(decoded)[-1]])
            with tf.control_dependencies([check]):
                labels = tf.cast(decoded[..., 0], tf.int32)
        if self.label_map is not None:
            labels = tf.gather(self.label_map, labels)
        return self._check_range(labels, path)

    def _colours_to_labels(self, rgb: tf.Tensor, path: tf.Tensor) -> tf.Tensor:
        """Looks each pixel's colour up in the palette hash table."""
        rgb32 = tf.cast(rgb, tf.int32)
        codes = rgb32[..., 0] * 65536 + rgb32[..., 1] * 256 + rgb32[..., 2]
        labels = self.colour_table.lookup(codes)
        unknown = labels < 0
        if self.unknown_color == "ignore":
            return tf.where(unknown, IGNORE_LABEL, labels)
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(unknown)),
            ["Mask", path, "has a colour not in the palette (r, g, b):",
             _first_flagged(rgb32, unknown)], summarize=3)
        with tf.control_dependencies([check]):
            return tf.identity(labels)

    def _check_range(self, labels: tf.Tensor, path: tf.Tensor) -> tf.Tensor:
        """Asserts labels are in `[0, num_classes)` or the ignore label (naming the file)."""
        if self.num_classes is None:
            return labels
        _, bad_count = check_label_range(labels, self.num_classes, IGNORE_LABEL, tf.strings.join(["Mask ", path]))
        with tf.control_dependencies([bad_count]):
            return tf.identity(labels)


def assert_same_size(
    image: tf.Tensor, mask: tf.Tensor, image_path: tf.Tensor, mask_path: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Asserts image and mask have the same height and width (names both files)."""
    check = tf.debugging.Assert(
        tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(mask))),
        ["Size mismatch: image", image_path, tf.shape(image)[:2], "mask", mask_path,
         tf.shape(mask)])
    with tf.control_dependencies([check]):
        return tf.identity(image), tf.identity(mask)
