"""`tf.data` input pipelines for semantic segmentation: `make_train_dataset`,
`make_eval_dataset` and `make_dataset` (either, chosen by `training`).

A dataset is a list of `(image_path, mask_path)` string pairs, or a dataset name plus
its root folder. The builders turn it into a `tf.data.Dataset` of batched
`(image float32 [B, H, W, 3] RGB in [0, 255], mask int32 [B, H, W])`, which goes straight
into `model.fit` / `model.evaluate` (SPGNet normalises its own input). How mask pixels
become labels is one `spgnet_keras.data.MaskStyle` (`mask_style=`; formats in
`spgnet_keras.data.masks`); the graph stages are in `spgnet_keras.data.pipeline`.

Errors in the graph (unreadable file, image/mask size mismatch, unknown colour, label out
of range) surface as `tf.errors.InvalidArgumentError` while iterating, with the file path
in the message; `validate=True` (`spgnet_keras.data.validate_dataset`) performs the same
checks eagerly first, with the same decoder, and raises `DatasetError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from spgnet_keras.classes import check_num_classes
from spgnet_keras.constants import OUTPUT_STRIDE
from spgnet_keras.data import augment, pipeline
from spgnet_keras.data.cityscapes import LABEL_ID_TO_TRAIN_ID
from spgnet_keras.data.listing import Pair
from spgnet_keras.data.masks import MaskStyle, check_mask_options, label_table, resolve_mask_format
from spgnet_keras.data.registry import dataset_files, dataset_spec
from spgnet_keras.data.spec import DatasetNotFoundError
from spgnet_keras.data.validation import validate_dataset
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.scales import check_scales

__all__ = ["make_dataset", "make_eval_dataset", "make_train_dataset"]


def make_train_dataset(
    source: str | Sequence[Pair],
    split: str = "train",
    *,
    root: str | Path | None = None,
    batch_size: int = 8,
    crop_size: tuple[int, int] | None = None,
    seed: int = 0,
    num_classes: int | None = None,
    mask_style: MaskStyle | None = None,
    base_table: np.ndarray | None = None,
    scales: Sequence[float] | None = augment.SCALES,
    flip: bool = True,
    shuffle: bool = True,
    cache: bool = False,
    repeat: bool = False,
    drop_remainder: bool = True,
    validate: bool = False,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    skip_batches: int = 0,
) -> tf.data.Dataset:
    """Builds the augmented, shuffled training pipeline.

    Files are shuffled (seeded), then each example gets a random scale from `scales`, a
    random horizontal flip and a random `crop_size` crop (padding smaller images with the
    ImageNet mean colour, masks with 255). Each example's augmentation seed comes from
    `tf.data.Dataset.random(seed)`, so two pipelines built with the same `seed` (and the
    same TF global seed, e.g. from `keras.utils.set_random_seed`) yield identical batches;
    successive epochs differ from each other, reproducibly.

    Args:
        source: str or list of (str, str). A dataset name (`"camvid"`, `"cityscapes"`,
            `"folder"`, `"synthetic"`; needs `root`) or `(image_path, mask_path)` pairs.
        split: str. Split of a named dataset.
        root: str or Path. Root folder of a named dataset.
        batch_size: int. Examples per batch.
        crop_size: (int, int). `(height, width)` crop; required when `batch_size > 1`
            (random scaling changes image sizes).
        seed: int. Base seed for shuffling and augmentation.
        num_classes: int. Enables an in-graph label range check (taken from the dataset
            spec for named datasets; a `"folder"` root without `meta.json` needs it).
        mask_style: MaskStyle. How mask pixels become labels (default: class-index PNGs).
        base_table: array. The dataset's own `[256]` label table, applied before
            `mask_style`'s `reduce_zero_label` and `label_map` (e.g.
            `ResolvedData.base_table`); set automatically for `"cityscapes"`.
        scales: tuple of float. Random-scale factors (paper: 0.5..2.0 step 0.25); None
            disables.
        flip: bool. Random horizontal flip.
        shuffle: bool. Shuffle the file order.
        cache: bool. Keep decoded uint8 images/masks in memory after the first epoch.
        repeat: bool. Repeat forever.
        drop_remainder: bool. Drop the last partial batch.
        validate: bool. Run `validate_dataset` (eager, the same decoder) first for early,
            named errors; needs `num_classes`.
        num_parallel_calls: int. Parallelism of the decode/augment maps.
        skip_batches: int. With `repeat=True` and `drop_remainder=True`: start after this
            many batches without decoding or augmenting them, yielding exactly what the
            full stream yields from there (a resumed run).

    Returns:
        `tf.data.Dataset` of `(images float32 [B, H, W, 3] in 0-255, masks int32 [B, H, W])`.

    Raises:
        InvalidInputError, DatasetError, DatasetNotFoundError: Bad arguments or files found
            before the pipeline runs.

    Example:

    ```python
    train = make_train_dataset("camvid", root="data/camvid", batch_size=8, crop_size=(352, 480),
                               repeat=True)
    ```
    """
    if isinstance(skip_batches, bool) or not isinstance(skip_batches, int) or skip_batches < 0:
        raise InvalidInputError(f"skip_batches must be an integer >= 0, got {skip_batches!r}")
    if skip_batches and not (repeat and drop_remainder):
        raise InvalidInputError("skip_batches is for repeated training streams (training=True, repeat=True, "
                                "drop_remainder=True)")
    if crop_size is None and batch_size > 1:
        raise InvalidInputError("Training with batch_size > 1 needs a crop_size (random scaling "
                                "changes image sizes)")
    scales = None if scales is None else check_scales(scales)
    resolved, load_pair = _prepared(source, split, root, batch_size, num_classes, mask_style, base_table, validate,
                                    "make_train_dataset")
    stream = pipeline.file_stream(resolved.pairs, load_pair if cache else None, shuffle, repeat, seed,
                                  num_parallel_calls)
    examples = pipeline.augmented(stream, None if cache else load_pair, seed, skip_batches * batch_size, crop_size,
                                  scales, flip, num_parallel_calls)
    return _finished(pipeline.batched(examples, batch_size, crop_size is not None, drop_remainder))


def make_eval_dataset(
    source: str | Sequence[Pair],
    split: str = "val",
    *,
    root: str | Path | None = None,
    batch_size: int = 1,
    num_classes: int | None = None,
    mask_style: MaskStyle | None = None,
    base_table: np.ndarray | None = None,
    pad_to_multiple: int | bool | None = None,
    shuffle: bool = False,
    cache: bool = False,
    repeat: bool = False,
    drop_remainder: bool = False,
    validate: bool = False,
    num_parallel_calls: int = tf.data.AUTOTUNE,
) -> tf.data.Dataset:
    """Builds the evaluation pipeline: whole images, no augmentation, in file order.

    Batches are built with `padded_batch` (images padded at the bottom/right with the
    ImageNet mean colour, masks with 255), so differently sized images can share a batch;
    `batch_size=1` gives each full image alone. An `SPGNet` takes images of any size (it
    pads them to a multiple of 32 itself, `spgnet_keras.multiscale.pads_itself`), so
    `pad_to_multiple` is only for models that need it.

    Args:
        source: str or list of (str, str). A dataset name (needs `root`) or
            `(image_path, mask_path)` pairs.
        split: str. Split of a named dataset.
        root: str or Path. Root folder of a named dataset.
        batch_size: int. Images per batch.
        num_classes: int. Enables the in-graph label range check (as `make_train_dataset`).
        mask_style: MaskStyle. How mask pixels become labels (default: class-index PNGs).
        base_table: array. The dataset's own `[256]` label table (as `make_train_dataset`).
        pad_to_multiple: int or bool. Pad each image at the bottom/right to a multiple of
            this (image: mean colour, mask: 255); `True` means `OUTPUT_STRIDE` (32).
        shuffle: bool. Shuffle the file order (seed 0).
        cache: bool. Keep decoded images/masks in memory after the first pass.
        repeat: bool. Repeat forever.
        drop_remainder: bool. Drop the last partial batch.
        validate: bool. Run `validate_dataset` first; needs `num_classes`.
        num_parallel_calls: int. Parallelism of the decode maps.

    Returns:
        `tf.data.Dataset` of `(images float32 [B, H, W, 3] in 0-255, masks int32 [B, H, W])`.

    Raises:
        InvalidInputError, DatasetError, DatasetNotFoundError: Bad arguments or files found
            before the pipeline runs.

    Example:

    ```python
    val = make_eval_dataset("camvid", "val", root="data/camvid")
    model.evaluate(val)
    ```
    """
    resolved, load_pair = _prepared(source, split, root, batch_size, num_classes, mask_style, base_table, validate,
                                    "make_eval_dataset")
    stream = pipeline.file_stream(resolved.pairs, load_pair if cache else None, shuffle, repeat, 0,
                                  num_parallel_calls)
    multiple = OUTPUT_STRIDE if pad_to_multiple is True else pad_to_multiple
    examples = pipeline.eval_examples(stream, None if cache else load_pair, multiple, num_parallel_calls)
    return _finished(pipeline.batched(examples, batch_size, False, drop_remainder))


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
    """`make_train_dataset` when `training=True`, else `make_eval_dataset`, with the mask
    options as separate keywords (the interface before the two builders; kept working).

    The mask keywords `mask_format`, `palette`, `ignore_colors`, `unknown_color`,
    `label_map` (`{old: new}`, or a whole `[256]` table that replaces the dataset's own,
    e.g. Cityscapes label id -> train id) and `reduce_zero_label` become one `MaskStyle`;
    `shuffle` and `drop_remainder` default to `training`. Options of the other mode are
    refused (`crop_size` or `skip_batches` in eval mode, `pad_to_multiple` in training);
    `scales` and `flip` are not used in eval mode. The other arguments are those of the
    builder called, which documents them.

    Returns:
        The builder's `tf.data.Dataset`: the same batches.

    Example:

    ```python
    train = make_dataset("camvid", "train", root="data/camvid", batch_size=8, crop_size=(352, 480),
                         training=True, repeat=True)
    val = make_dataset("camvid", "val", root="data/camvid", batch_size=1)
    ```
    """
    if isinstance(source, str) and root is None:
        raise InvalidInputError(f"make_dataset({source!r}) needs root=<dataset folder>")
    check_mask_options("index" if mask_format == "auto" else mask_format, palette, unknown_color)
    if label_map is not None and not isinstance(label_map, dict):
        label_map, base_table = None, np.asarray(label_map)  # a whole table replaces the dataset's own
    else:
        base_table = None
    style = MaskStyle(mask_format=mask_format, palette=palette, reduce_zero_label=reduce_zero_label,
                      label_map=label_map, ignore_colors=ignore_colors, unknown_color=unknown_color)
    common = dict(root=root, batch_size=batch_size, num_classes=num_classes, mask_style=style, base_table=base_table,
                  cache=cache, repeat=repeat, validate=validate, num_parallel_calls=num_parallel_calls)
    if training:
        if pad_to_multiple:
            raise InvalidInputError("pad_to_multiple is for evaluation (training=False); training crops are "
                                    "crop_size")
        return make_train_dataset(
            source, split, crop_size=crop_size, seed=seed, scales=scales, flip=flip,
            shuffle=True if shuffle is None else shuffle, drop_remainder=True if drop_remainder is None else
            drop_remainder, skip_batches=skip_batches, **common)
    if skip_batches:
        raise InvalidInputError("skip_batches is for repeated training streams (training=True, repeat=True, "
                                "drop_remainder=True)")
    if crop_size is not None:
        raise InvalidInputError("crop_size is for training; in eval mode use pad_to_multiple "
                                "and/or batch_size=1")
    return make_eval_dataset(source, split, pad_to_multiple=pad_to_multiple, shuffle=bool(shuffle),
                             drop_remainder=bool(drop_remainder), **common)


def _prepared(source, split, root, batch_size, num_classes, mask_style, base_table, validate, who):
    """The checked `Source` (pairs, classes, composed label table) and its pair loader."""
    style = MaskStyle() if mask_style is None else mask_style
    if not isinstance(style, MaskStyle):
        raise InvalidInputError(f"mask_style must be a MaskStyle, got {type(style).__name__}")
    check_mask_options("index" if style.mask_format == "auto" else style.mask_format, style.palette,
                       style.unknown_color)
    if num_classes is not None:
        check_num_classes(num_classes)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    resolved = _resolve_source(source, split, root, num_classes, who)
    base = resolved.label_map if base_table is None else base_table
    resolved.label_map = label_table(style.label_map, style.reduce_zero_label, base=base)
    mask_format = resolve_mask_format(style.mask_format, [mask for _, mask in resolved.pairs])
    check_mask_options(mask_format, style.palette, style.unknown_color)
    palette = None if style.palette is None else [list(colour) for colour in style.palette]
    ignore_colors = [list(colour) for colour in style.ignore_colors]
    if validate:
        if resolved.num_classes is None:
            raise InvalidInputError("validate=True needs num_classes")
        validate_dataset(resolved.pairs, resolved.num_classes, mask_format=mask_format, palette=palette,
                         ignore_colors=ignore_colors, unknown_color=style.unknown_color,
                         label_map=resolved.label_map)
    return resolved, pipeline.pair_loader(resolved, mask_format, palette, ignore_colors, style.unknown_color)


def _resolve_source(source, split: str, root, num_classes: int | None, who: str) -> pipeline.Source:
    """Turns a dataset name (+ root) or a list of pairs into pairs and label settings."""
    if isinstance(source, str):
        if root is None:
            raise InvalidInputError(f"{who}({source!r}) needs root=<dataset folder>")
        if num_classes is None:
            num_classes = dataset_spec(source, root).num_classes
        return pipeline.Source(
            pairs=dataset_files(source, root, split),
            num_classes=num_classes,
            label_map=LABEL_ID_TO_TRAIN_ID if source == "cityscapes" else None,
        )
    pairs = [(str(image), str(mask)) for image, mask in source]
    if not pairs:
        raise DatasetNotFoundError(f"{who}: empty list of pairs")
    return pipeline.Source(pairs=pairs, num_classes=num_classes, label_map=None)


def _finished(batches: tf.data.Dataset) -> tf.data.Dataset:
    """Deterministic element order (parallel maps keep it: reproducible batches), prefetched."""
    options = tf.data.Options()
    options.deterministic = True
    return batches.with_options(options).prefetch(tf.data.AUTOTUNE)
