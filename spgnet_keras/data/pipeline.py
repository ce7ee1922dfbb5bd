"""``tf.data`` input pipelines for semantic segmentation.

A dataset is a list of ``(image_path, mask_path)`` string pairs. :func:`make_dataset` turns
it (or a dataset name plus root folder) into a ``tf.data.Dataset`` of
``(image float32 [H, W, 3] RGB in [0, 255], mask int32 [H, W])``, batched (SPGNet
normalises its own input). Everything after file listing runs in the TF graph (decode, colour/label-id
lookup, augmentation), in a parallel ``map`` followed by ``prefetch``.

Images and masks are read by the one rule of :mod:`spgnet_keras.data.decoding` (also used
by inference, evaluation and the dataset check); mask formats are described in
:mod:`spgnet_keras.data.masks`.

Errors in the graph (unreadable file, image/mask size mismatch, unknown colour, label out
of range) surface as ``tf.errors.InvalidArgumentError`` while iterating, with the file
path in the message; :func:`~spgnet_keras.data.validate_dataset` performs the same checks
eagerly, with the same decoder, and raises :class:`DatasetError`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from spgnet_keras import preprocessing
from spgnet_keras.classes import check_num_classes
from spgnet_keras.constants import IGNORE_LABEL, OUTPUT_STRIDE
from spgnet_keras.data import augment, decoding
from spgnet_keras.data.cityscapes import LABEL_ID_TO_TRAIN_ID
from spgnet_keras.data.listing import Pair
from spgnet_keras.data.masks import (
    check_mask_options,
    colour_lookup,
    label_table,
    resolve_mask_format,
    shared_palette_of_index_masks,
)
from spgnet_keras.data.registry import dataset_files, dataset_spec
from spgnet_keras.data.spec import DatasetNotFoundError
from spgnet_keras.data.validation import validate_dataset
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.labels import check_label_range
from spgnet_keras.scales import check_scales


def decode_image(path: tf.Tensor) -> tf.Tensor:
    """Reads and decodes an image file into uint8 RGB ``[H, W, 3]`` (in-graph).

    The rule of :mod:`spgnet_keras.data.decoding` (the one inference and the dataset check
    use): grey is replicated, palettes are expanded, alpha is dropped, 16-bit keeps the high
    byte; a refused file fails with "Unreadable image <path> is <reason>".

    Args:
        path: Scalar string tensor.

    Returns:
        uint8 ``[H, W, 3]``.
    """
    return decoding.decode_image_in_graph(path)


def _first_flagged(values: tf.Tensor, flags: tf.Tensor) -> tf.Tensor:
    """Returns the first element of ``values`` (``[H, W, ...]``) where ``flags`` is True.

    Safe to evaluate when no flag is set (returns element 0), so it can feed an Assert.
    """
    flat_flags = tf.reshape(flags, [-1])
    index = tf.argmax(tf.cast(flat_flags, tf.int32))
    flat_values = tf.reshape(values, tf.concat([[-1], tf.shape(values)[2:]], axis=0))
    return flat_values[index]


class _MaskDecoder:
    """Decodes a mask file into int32 labels ``[H, W]`` in the graph.

    Built once per pipeline; holds the colour hash table (colour masks and palette PNGs)
    and the label lookup table (e.g. Cityscapes label id -> train id). Colours are packed
    into one int32 ``r * 65536 + g * 256 + b`` and looked up in a ``StaticHashTable``: one
    lookup per pixel instead of comparing every pixel with all K palette colours.
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
        """Returns int32 labels ``[H, W]`` for the mask file at ``path``."""
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
        """Asserts labels are in ``[0, num_classes)`` or the ignore label (naming the file)."""
        if self.num_classes is None:
            return labels
        _, bad_count = check_label_range(labels, self.num_classes, IGNORE_LABEL, tf.strings.join(["Mask ", path]))
        with tf.control_dependencies([bad_count]):
            return tf.identity(labels)


def _assert_same_size(
    image: tf.Tensor, mask: tf.Tensor, image_path: tf.Tensor, mask_path: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Asserts image and mask have the same height and width (names both files)."""
    check = tf.debugging.Assert(
        tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(mask))),
        ["Size mismatch: image", image_path, tf.shape(image)[:2], "mask", mask_path,
         tf.shape(mask)])
    with tf.control_dependencies([check]):
        return tf.identity(image), tf.identity(mask)


def as_float_image(image: tf.Tensor) -> tf.Tensor:
    """uint8 RGB -> float32 RGB in [0, 255] (the model normalises its own input)."""
    return tf.cast(image, tf.float32)


@dataclasses.dataclass
class _Source:
    """Resolved input of :func:`make_dataset`."""

    pairs: list[Pair]
    num_classes: int | None
    label_map: np.ndarray | None


def _resolve_source(source, split: str, root, num_classes: int | None) -> _Source:
    """Turns a dataset name (+ root) or a list of pairs into pairs and label settings."""
    if isinstance(source, str):
        if root is None:
            raise InvalidInputError(f"make_dataset({source!r}) needs root=<dataset folder>")
        if num_classes is None:
            num_classes = dataset_spec(source, root).num_classes
        return _Source(
            pairs=dataset_files(source, root, split),
            num_classes=num_classes,
            label_map=LABEL_ID_TO_TRAIN_ID if source == "cityscapes" else None,
        )
    pairs = [(str(image), str(mask)) for image, mask in source]
    if not pairs:
        raise DatasetNotFoundError("make_dataset: empty list of pairs")
    return _Source(pairs=pairs, num_classes=num_classes, label_map=None)


def make_dataset(
    source: str | Sequence[Pair],
    split: str = "train",
    *,
    root: str | Path | None = None,
    batch_size: int = 8,
    crop_size: tuple[int, int] | None = None,
    training: bool = False,
    seed: int = 0,
    num_classes: int | None = None,
    mask_format: str = "index",
    palette: Sequence[Sequence[int]] | None = None,
    ignore_colors: Sequence[Sequence[int]] = (),
    unknown_color: str = "error",
    label_map: np.ndarray | dict | None = None,
    reduce_zero_label: bool = False,
    scales: Sequence[float] | None = augment.SCALES,
    flip: bool = True,
    pad_to_multiple: int | bool | None = None,
    shuffle: bool | None = None,
    cache: bool = False,
    repeat: bool = False,
    drop_remainder: bool | None = None,
    validate: bool = False,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    skip_batches: int = 0,
) -> tf.data.Dataset:
    """Builds a batched ``tf.data`` pipeline of float32 RGB 0-255 images and int32 masks.

    The images are what ``SPGNet`` takes (it normalises its own input), so the dataset
    goes straight into ``model.fit`` / ``model.evaluate``.

    Training mode (``training=True``): files are shuffled (seeded), then each example gets
    random scale from ``scales``, random horizontal flip and a random ``crop_size`` crop
    (padding smaller images with the ImageNet mean colour / masks with 255). Each example's augmentation seed
    comes from ``tf.data.Dataset.random(seed)``, so two pipelines built with the same
    ``seed`` (and the same TF global seed, e.g. from ``keras.utils.set_random_seed``, which
    TF combines with op seeds) yield identical batches; successive epochs differ from each
    other, reproducibly.

    Eval mode (``training=False``): no augmentation and no shuffling. With
    ``pad_to_multiple=32`` each image is padded at the bottom/right to a multiple of 32
    (image: the ImageNet mean colour, mask 255). Batches are built with ``padded_batch`` (same
    padding values), so differently sized images can share a batch; use ``batch_size=1``
    to get each full image alone.

    Args:
        source: A dataset name (``"camvid"``, ``"cityscapes"``, ``"folder"``,
            ``"synthetic"``; needs ``root``) or a list of ``(image_path, mask_path)``.
        split: Split of a named dataset.
        root: Root folder of a named dataset.
        batch_size: Examples per batch.
        crop_size: ``(height, width)`` training crop. Required in training mode when
            ``batch_size > 1``; must be None in eval mode.
        training: Augment and shuffle when True.
        seed: Base seed for shuffling and augmentation.
        num_classes: Enables an in-graph label range check (taken from the dataset spec
            for named datasets; a ``"folder"`` root without ``meta.json`` needs it).
        mask_format: ``"index"``, ``"color"`` or ``"auto"`` (from the masks' PNG headers;
            see :mod:`spgnet_keras.data.masks`).
        palette: Class colours for ``"color"`` masks (``palette[i]`` is class ``i``).
        ignore_colors: Colours of ``"color"`` masks that mean "ignore" (255).
        unknown_color: ``"error"`` (default) or ``"ignore"`` for colours not in the palette.
        label_map: ``{old: new}`` remapping of the decoded labels (merge classes:
            ``{3: 1}``; drop them: ``{7: 255}``), or a whole ``[256]`` table, applied in the
            graph (a table replaces the label id -> train id table set automatically for
            ``"cityscapes"``).
        reduce_zero_label: 0 ("unlabelled") becomes 255 and every other label moves down by
            one, as in ADE20K; applied before a ``{old: new}`` ``label_map``.
        scales: Random-scale factors (paper: 0.5..2.0 step 0.25); None disables.
        flip: Random horizontal flip in training.
        pad_to_multiple: Eval only: pad each image at the bottom/right up to a multiple of
            this; ``True`` means ``OUTPUT_STRIDE`` (32).
        shuffle: Shuffle file order; defaults to ``training``.
        cache: Keep decoded uint8 images/masks in memory after the first epoch.
        repeat: Repeat forever.
        drop_remainder: Drop the last partial batch; defaults to ``training``.
        validate: Run :func:`validate_dataset` (eager, the same decoder) first for early,
            named errors: a pair that passes cannot fail or read differently in the pipeline.
        num_parallel_calls: Parallelism of the decode/augment maps.
        skip_batches: Training streams (``training=True``, ``repeat=True``, whole
            batches): start after this many batches without decoding or augmenting
            them, yielding exactly what the full stream yields from there (resuming a
            run at a late step costs the shuffling of file names, not a replay).

    Returns:
        ``tf.data.Dataset`` of ``(images float32 [B, H, W, 3] in 0-255, masks int32 [B, H, W])``.

    Raises:
        ValueError / DatasetError / DatasetNotFoundError: For bad arguments or files found
            before the pipeline runs; in-graph problems raise
            ``tf.errors.InvalidArgumentError`` naming the file while iterating.
    """
    scales = _check_arguments(batch_size, crop_size, training, num_classes, mask_format, palette, unknown_color,
                              scales, repeat, drop_remainder, skip_batches)
    resolved = _resolve_source(source, split, root, num_classes)
    resolved.label_map = label_table(label_map, reduce_zero_label, base=resolved.label_map)
    mask_format = resolve_mask_format(mask_format, [mask for _, mask in resolved.pairs])
    check_mask_options(mask_format, palette, unknown_color)
    if validate:
        if resolved.num_classes is None:
            raise InvalidInputError("validate=True needs num_classes")
        validate_dataset(resolved.pairs, resolved.num_classes, mask_format=mask_format,
                         palette=palette, ignore_colors=ignore_colors,
                         unknown_color=unknown_color, label_map=resolved.label_map)
    load_pair = _pair_loader(resolved, mask_format, palette, ignore_colors, unknown_color)
    stream = _file_stream(resolved.pairs, load_pair if cache else None, training if shuffle is None else shuffle,
                          repeat, seed, num_parallel_calls)
    if training:
        examples = _augmented(stream, None if cache else load_pair, seed, skip_batches * batch_size, crop_size,
                              scales, flip, num_parallel_calls)
    else:
        examples = _eval_examples(stream, None if cache else load_pair,
                                  OUTPUT_STRIDE if pad_to_multiple is True else pad_to_multiple, num_parallel_calls)
    batches = _batched(examples, batch_size, training and crop_size is not None,
                       training if drop_remainder is None else drop_remainder)
    options = tf.data.Options()
    options.deterministic = True  # parallel maps keep element order: reproducible batches
    return batches.with_options(options).prefetch(tf.data.AUTOTUNE)


def _check_arguments(batch_size, crop_size, training, num_classes, mask_format, palette, unknown_color, scales,
                     repeat, drop_remainder, skip_batches):
    """ValueError for a bad or inconsistent `make_dataset` argument; returns the checked scales."""
    check_mask_options("index" if mask_format == "auto" else mask_format, palette, unknown_color)
    if num_classes is not None:
        check_num_classes(num_classes)
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(skip_batches, bool) or not isinstance(skip_batches, int) or skip_batches < 0:
        raise InvalidInputError(f"skip_batches must be an integer >= 0, got {skip_batches!r}")
    if skip_batches and not (training and repeat and drop_remainder is not False):
        raise InvalidInputError("skip_batches is for repeated training streams (training=True, repeat=True, "
                         "drop_remainder=True)")
    if training and crop_size is None and batch_size > 1:
        raise InvalidInputError("Training with batch_size > 1 needs a crop_size (random scaling "
                         "changes image sizes)")
    if not training and crop_size is not None:
        raise InvalidInputError("crop_size is for training; in eval mode use pad_to_multiple "
                         "and/or batch_size=1")
    return None if scales is None else check_scales(scales)


def _pair_loader(resolved: _Source, mask_format, palette, ignore_colors, unknown_color):
    """The graph function decoding one (image path, mask path) to (uint8 [H, W, 3], int32 [H, W])."""
    index_palette = (shared_palette_of_index_masks([m for _, m in resolved.pairs])
                     if mask_format == "index" else None)
    decode_mask = _MaskDecoder(
        mask_format, np.asarray(palette) if mask_format == "color" else index_palette,
        ignore_colors, unknown_color, resolved.label_map, resolved.num_classes)

    # The map functions use only explicit TF control flow (tf.cond), so AutoGraph is
    # switched off: faster tracing and no source-reading surprises.
    @tf.autograph.experimental.do_not_convert
    def load_pair(image_path: tf.Tensor, mask_path: tf.Tensor):
        return _assert_same_size(decode_image(image_path), decode_mask(mask_path), image_path, mask_path)

    return load_pair


def _file_stream(pairs, cache_with, shuffle, repeat, seed, num_parallel_calls) -> tf.data.Dataset:
    """(image path, mask path) pairs, or decoded pairs cached in memory when `cache_with` (the
    pair loader) is given; shuffled (seeded) and repeated as asked."""
    images, masks = (list(column) for column in zip(*pairs))
    stream = tf.data.Dataset.from_tensor_slices((images, masks))
    if cache_with is not None:
        stream = stream.map(cache_with, num_parallel_calls=num_parallel_calls).cache()
    if shuffle:
        stream = stream.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    return stream.repeat() if repeat else stream


def _augmented(stream, load_pair, seed, skip_examples, crop_size, scales, flip, num_parallel_calls):
    """Training examples: each (decoded, unless `load_pair` is None: cached) pair randomly scaled,
    flipped and cropped with its own seed from ``Dataset.random(seed)``.

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


def _eval_examples(stream, load_pair, pad_to_multiple, num_parallel_calls):
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


def _batched(examples, batch_size, same_size, drop_remainder):
    """Batches of same-sized crops, or padded batches (the model's sentinel padding, masks 255)."""
    if same_size:
        return examples.batch(batch_size, drop_remainder=drop_remainder)
    batches = examples.padded_batch(
        batch_size,
        padding_values=(tf.constant(preprocessing.BATCH_PAD_SENTINEL, tf.float32),
                        tf.constant(IGNORE_LABEL, tf.int32)),
        drop_remainder=drop_remainder)
    return batches.map(lambda images, masks: (preprocessing.fill_batch_padding(images), masks))
