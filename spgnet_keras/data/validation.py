"""Eager dataset check: every pair read with the pipeline's own decoder before training starts."""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from spgnet_keras.classes import check_num_classes
from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.data import decoding
from spgnet_keras.data.listing import Pair
from spgnet_keras.data.masks import (
    MaskStyle,
    check_mask_options,
    colour_codes,
    colour_lookup,
    label_table,
    mask_arguments,
    resolve_mask_format,
    shared_palette_of_index_masks,
)
from spgnet_keras.data.spec import DatasetError, DatasetNotFoundError
from spgnet_keras.labels import check_label_values


@dataclasses.dataclass
class ValidationReport:
    """Summary returned by `validate_dataset`.

    Attributes:
        num_pairs: Number of pairs checked.
        class_pixel_counts: int64 `[num_classes]` pixel count of each class.
        ignore_pixels: Number of pixels equal to the ignore label.
        image_sizes: Distinct `(height, width)` sizes seen.
        class_image_pixels: int64 `[num_classes]`: for each class, the labelled pixels of the
            images it appears in (the denominator of median-frequency balancing).
        size_counts: How many images have each `(height, width)`.

    Example:

    ```python
    report = validate_dataset(pairs, num_classes=11)
    print(report.num_pairs, report.class_pixel_counts)
    ```
    """

    num_pairs: int
    class_pixel_counts: np.ndarray
    ignore_pixels: int
    image_sizes: set[tuple[int, int]]
    class_image_pixels: np.ndarray | None = None
    size_counts: dict | None = None


def _read_mask_numpy(
    path: str,
    mask_format: str,
    lookup: tuple[np.ndarray, np.ndarray] | None,
    unknown_color: str,
    label_map: np.ndarray | None,
) -> np.ndarray:
    """Reads one mask into int64 labels with the pipeline's decoder (`.decoding`) and lookups.

    `lookup` is the palette lookup of colour masks, or of palette (`P`) index
    masks, whose expanded colours are mapped back to indices as in the pipeline.

    Raises:
        DatasetError: A refused mask, an unknown colour with `unknown_color="error"`, or a
            palette mask whose indices the pipeline would read as other indices.
    """
    try:
        pixels = decoding.read_mask(path, index=mask_format == "index")
    except ValueError as error:
        raise DatasetError(str(error)) from None
    if lookup is None:
        labels = pixels[..., 0].astype(np.int64)
    else:
        rgb = decoding.to_rgb(pixels).numpy()
        labels = _colour_mask_to_labels(rgb, path, lookup, unknown_color)
        if mask_format == "index":
            _check_palette_indices(path, labels)
    if label_map is not None:
        labels = np.asarray(label_map)[labels]
    return labels


def _check_palette_indices(path: str, labels: np.ndarray) -> None:
    """DatasetError when a palette mask's stored indices differ from the indices the pipeline
    recovers from their colours (a colour repeated in the palette, or an index past its end)."""
    with Image.open(path) as mask_image:
        stored = np.asarray(mask_image).astype(np.int64)
    differ = stored != labels
    if differ.any():
        index, read_as = int(stored[differ][0]), int(labels[differ][0])
        raise DatasetError(
            f"Mask {path}: palette index {index} is read as {read_as} (its colour is repeated in the palette "
            "or missing from it); give every class its own colour or save the mask as an 8-bit grey ('L') PNG")


def _colour_mask_to_labels(
    rgb: np.ndarray, path: str, lookup: tuple[np.ndarray, np.ndarray],
    unknown_color: str,
) -> np.ndarray:
    """Maps an RGB mask to labels with numpy; unknown colours error or become 255."""
    codes, labels = lookup
    pixel_codes = colour_codes(rgb)
    position = np.clip(np.searchsorted(codes, pixel_codes), 0, len(codes) - 1)
    known = codes[position] == pixel_codes
    if not known.all() and unknown_color == "error":
        bad = np.unique(pixel_codes[~known])[:5]
        colours = [((c >> 16) & 255, (c >> 8) & 255, c & 255) for c in bad.tolist()]
        raise DatasetError(f"Mask {path}: colour(s) not in the palette: {colours}")
    return np.where(known, labels[position], IGNORE_LABEL)


def _check_pair(
    image_path: str,
    mask_path: str,
    num_classes: int,
    ignore_index: int,
    read_mask,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Checks one pair; returns `(labels, (height, width))` or raises DatasetError."""
    try:
        height, width = decoding.read_image(image_path).shape[:2]
    except ValueError as error:  # names the file and the reason
        raise DatasetError(str(error)) from None
    except OSError as error:
        raise DatasetError(f"Unreadable image {image_path}: {error}") from None
    try:
        labels = read_mask(mask_path)
    except DatasetError:
        raise
    except Exception as error:
        raise DatasetError(f"Unreadable mask {mask_path}: {error}") from error
    if labels.shape != (height, width):
        raise DatasetError(
            f"Size mismatch: image {image_path} is {height}x{width} (HxW) but mask "
            f"{mask_path} is {labels.shape[0]}x{labels.shape[1]}")
    check_label_values(labels, num_classes, ignore_index, f"Mask {mask_path}", error=DatasetError)
    return labels, (height, width)


def validate_dataset(
    pairs: Iterable[Pair],
    num_classes: int,
    *,
    ignore_index: int = IGNORE_LABEL,
    mask_format: str = "index",
    palette: Sequence[Sequence[int]] | None = None,
    ignore_colors: Sequence[Sequence[int]] = (),
    unknown_color: str = "error",
    label_map: np.ndarray | dict | None = None,
    reduce_zero_label: bool = False,
    max_errors: int = 10,
    mask_style: MaskStyle | None = None,
    base_table: np.ndarray | None = None,
) -> ValidationReport:
    """Eagerly checks every pair before training, reading the files as the pipeline does.

    Images and masks are decoded by the pipeline's own rule (`spgnet_keras.data.decoding`,
    run eagerly), so a pair that passes reads the same in training and cannot fail there.
    Checks that each image decodes, each mask decodes in the expected format and has the
    image's size, and every label (after `label_map`) is in `[0, num_classes)` or
    `ignore_index`. All pairs are checked; up to `max_errors` problems are reported.

    Args:
        pairs: `(image_path, mask_path)` pairs.
        num_classes: Number of classes.
        ignore_index: Label value allowed besides the classes.
        mask_format: `"index"`, `"color"` or `"auto"` (`.masks`).
        palette: Class colours for `"color"` masks.
        ignore_colors: Extra colours mapped to `ignore_index` for `"color"` masks.
        unknown_color: `"error"` or `"ignore"` (unknown colours become 255).
        label_map: Optional `[256]` table (e.g.
            `spgnet_keras.data.cityscapes.LABEL_ID_TO_TRAIN_ID`) or `{old: new}`
            mapping applied to the decoded labels.
        reduce_zero_label: 0 becomes 255 and every other label moves down by one (ADE20K),
            before a `{old: new}` `label_map`.
        max_errors: Number of problems listed in the error message.
        mask_style: MaskStyle. The mask options above in one value (not together with them).
        base_table: array. The dataset's own `[256]` label table, before `mask_style`'s
            label map (e.g. `ResolvedData.base_table`).

    Returns:
        A `ValidationReport` with class pixel counts.

    Raises:
        DatasetError: Listing the offending files and values.
        ValueError: For bad arguments or no pairs.
    """
    check_num_classes(num_classes)
    pairs = list(pairs)
    if not pairs:
        raise DatasetNotFoundError("validate_dataset: no pairs given")
    read_mask = MaskReader([str(mask) for _, mask in pairs], **mask_arguments(
        mask_style, base_table, mask_format=mask_format, palette=palette, ignore_colors=ignore_colors,
        unknown_color=unknown_color, label_map=label_map, reduce_zero_label=reduce_zero_label))
    counts = np.zeros(num_classes, dtype=np.int64)
    image_pixels = np.zeros(num_classes, dtype=np.int64)
    ignore_pixels = 0
    sizes: dict[tuple[int, int], int] = {}
    errors: list[str] = []
    for image_path, mask_path in pairs:
        try:
            labels, size = _check_pair(str(image_path), str(mask_path), num_classes,
                                       ignore_index, read_mask)
        except DatasetError as error:
            errors.append(str(error))
            continue
        sizes[size] = sizes.get(size, 0) + 1
        valid = labels[labels != ignore_index]
        image_counts = np.bincount(valid.ravel(), minlength=num_classes)[:num_classes]
        counts += image_counts
        image_pixels[image_counts > 0] += valid.size
        ignore_pixels += labels.size - valid.size
    if errors:
        shown = "\n  ".join(errors[:max_errors])
        more = f"\n  ... and {len(errors) - max_errors} more" if len(errors) > max_errors else ""
        raise DatasetError(f"{len(errors)} of {len(pairs)} pairs are invalid:\n  {shown}{more}")
    return ValidationReport(len(pairs), counts, ignore_pixels, set(sizes), image_pixels, sizes)


class MaskReader:
    """Reads mask files into int64 labels `[H, W]` eagerly, exactly as the `tf.data`
    pipeline does (its decoder, colour lookups and label table): the dataset check and the
    evaluation of masks of every style use it.

    Args:
        mask_paths: All masks of the dataset (their PNG headers decide `"auto"` and whether
            index masks are palette PNGs).
        mask_format: `"index"`, `"color"` or `"auto"`.
        palette: Class colours for `"color"` masks.
        ignore_colors: Colours of `"color"` masks that mean 255.
        unknown_color: `"error"` or `"ignore"`.
        label_map: `[256]` table or `{old: new}` applied after decoding
            (`spgnet_keras.data.masks.label_table`).
        reduce_zero_label: ADE20K's 0 -> 255, others down by one, before `label_map`.

    Raises:
        ValueError / DatasetError: Inconsistent options or masks (names the file).

    Example:

    ```python
    read = MaskReader([mask for _, mask in pairs], **MaskStyle(mask_format="auto").arguments())
    labels = read(pairs[0][1])  # int64 [H, W]
    ```
    """

    def __init__(self, mask_paths: Sequence[str], mask_format: str = "index", palette=None,
                 ignore_colors: Sequence[Sequence[int]] = (), unknown_color: str = "error",
                 label_map=None, reduce_zero_label: bool = False):
        mask_paths = [str(path) for path in mask_paths]
        mask_format = resolve_mask_format(mask_format, mask_paths)
        check_mask_options(mask_format, palette, unknown_color)
        if mask_format == "color":
            self.lookup = colour_lookup(palette, ignore_colors)
        else:
            index_palette = shared_palette_of_index_masks(mask_paths)
            self.lookup = None if index_palette is None else colour_lookup(index_palette, ignore_colors)
        self.mask_format = mask_format
        self.unknown_color = unknown_color
        self.label_map = label_table(label_map, reduce_zero_label)

    def __call__(self, path) -> np.ndarray:
        return _read_mask_numpy(str(path), self.mask_format, self.lookup, self.unknown_color, self.label_map)
