"""The stages of the `tf.data` input pipelines built by `spgnet_keras.data.builders`
(`make_train_dataset`, `make_eval_dataset`, `make_dataset`).

Everything after file listing runs in the TF graph: decode (the one rule of
`spgnet_keras.data.decoding`, also used by inference, evaluation and the dataset check),
colour/label-id lookup (`spgnet_keras.data.mask_decoder.MaskDecoder`), augmentation
(`spgnet_keras.data.augment`), in parallel `map`s, batched.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from spgnet_keras import preprocessing
from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.data import augment, decoding
from spgnet_keras.data.listing import Pair
from spgnet_keras.data.mask_decoder import MaskDecoder, assert_same_size
from spgnet_keras.data.masks import shared_palette_of_index_masks


def decode_image(path: tf.Tensor) -> tf.Tensor:
    """Reads and decodes an image file into uint8 RGB `[H, W, 3]` (in-graph).

    The rule of `spgnet_keras.data.decoding` (the one inference and the dataset check
    use): grey is replicated, palettes are expanded, alpha is dropped, 16-bit keeps the high
    byte; a refused file fails with "Unreadable image <path> is <reason>".

    Args:
        path: tf.Tensor. Scalar string.

    Returns:
        uint8 `[H, W, 3]`.
    """
    return decoding.decode_image_in_graph(path)


def as_float_image(image: tf.Tensor) -> tf.Tensor:
    """uint8 RGB -> float32 RGB in [0, 255] (the model normalises its own input)."""
    return tf.cast(image, tf.float32)


@dataclasses.dataclass
class Source:
    """The resolved input of a builder: the pairs, the class count of the label range check
    (None: no check) and the `[256]` label table (None: labels as decoded).

    Example:

    ```python
    source = Source(pairs=[("a.png", "a_mask.png")], num_classes=11, label_map=None)
    ```
    """

    pairs: list[Pair]
    num_classes: int | None
    label_map: np.ndarray | None


def pair_loader(resolved: Source, mask_format, palette, ignore_colors, unknown_color):
    """The graph function decoding one (image path, mask path) to (uint8 [H, W, 3], int32 [H, W])."""
    index_palette = (shared_palette_of_index_masks([m for _, m in resolved.pairs])
                     if mask_format == "index" else None)
    decode_mask = MaskDecoder(
        mask_format, np.asarray(palette) if mask_format == "color" else index_palette,
        ignore_colors, unknown_color, resolved.label_map, resolved.num_classes)

    # The map functions use only explicit TF control flow (tf.cond), so AutoGraph is
    # switched off: faster tracing and no source-reading surprises.
    @tf.autograph.experimental.do_not_convert
    def load_pair(image_path: tf.Tensor, mask_path: tf.Tensor):
        return assert_same_size(decode_image(image_path), decode_mask(mask_path), image_path, mask_path)

    return load_pair


def file_stream(pairs, cache_with, shuffle, repeat, seed, num_parallel_calls) -> tf.data.Dataset:
    """(image path, mask path) pairs, or decoded pairs cached in memory when `cache_with` (the
    pair loader) is given; shuffled (seeded) and repeated as asked."""
    images, masks = (list(column) for column in zip(*pairs))
    stream = tf.data.Dataset.from_tensor_slices((images, masks))
    if cache_with is not None:
        stream = stream.map(cache_with, num_parallel_calls=num_parallel_calls).cache()
    if shuffle:
        stream = stream.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    return stream.repeat() if repeat else stream


def augmented(stream, load_pair, seed, skip_examples, crop_size, scales, flip, num_parallel_calls):
    """Training examples: each (decoded, unless `load_pair` is None: cached) pair randomly scaled,
    flipped and cropped with its own seed from `Dataset.random(seed)`.

    Files (or cached pairs) and their augmentation seeds are drawn first; a resumed run skips
    the examples already trained on here, before any is decoded or augmented, and then sees
    exactly what an uninterrupted run sees.
    """
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    @tf.autograph.experimental.do_not_convert
    def augment_example(example, example_seed):
        image, mask = example if load_pair is None else load_pair(*example)
        return augment.augment_pair(as_float_image(image), mask, example_seed, crop_size, scales, flip)

    return tf.data.Dataset.zip((stream, seeds)).skip(skip_examples).map(
        augment_example, num_parallel_calls=num_parallel_calls)


def eval_examples(stream, load_pair, pad_to_multiple, num_parallel_calls):
    """Evaluation examples: float images, padded at the bottom/right to `pad_to_multiple` if set."""
    if load_pair is not None:
        stream = stream.map(load_pair, num_parallel_calls=num_parallel_calls)

    @tf.autograph.experimental.do_not_convert
    def prepare(image, mask):
        image = as_float_image(image)
        if pad_to_multiple:
            image, mask = augment.pad_to_multiple(image, mask, pad_to_multiple)
        return image, mask

    return stream.map(prepare, num_parallel_calls=num_parallel_calls)


def batched(examples, batch_size, same_size, drop_remainder):
    """Batches of same-sized crops, or padded batches (the model's sentinel padding, masks 255)."""
    if same_size:
        return examples.batch(batch_size, drop_remainder=drop_remainder)
    batches = examples.padded_batch(
        batch_size,
        padding_values=(tf.constant(preprocessing.BATCH_PAD_SENTINEL, tf.float32),
                        tf.constant(IGNORE_LABEL, tf.int32)),
        drop_remainder=drop_remainder)
    return batches.map(lambda images, masks: (preprocessing.fill_batch_padding(images), masks))
