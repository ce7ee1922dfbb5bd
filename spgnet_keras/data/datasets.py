"""File listing, validation and ``tf.data`` input pipelines for semantic segmentation.

A dataset is a list of ``(image_path, mask_path)`` string pairs. :func:`make_dataset` turns
it (or a dataset name plus root folder) into a ``tf.data.Dataset`` of
``(image float32 [H, W, 3] RGB in [0, 255], mask int32 [H, W])``, batched (SPGNet
normalises its own input). Everything after file listing runs in the TF graph (decode, colour/label-id
lookup, augmentation), in a parallel ``map`` followed by ``prefetch``.

Images and masks are read by the one rule of :mod:`spgnet_keras.data.decoding` (also used
by inference, evaluation and the dataset check): which formats and modes are accepted, and
the pixels each gives.

Mask formats:

* ``"index"``: 8-bit grey PNG whose values are class indices (PIL mode ``L``), or a
  palette PNG (mode ``P``) whose *indices* are the classes. TF's PNG decoder expands
  palette PNGs to RGB, so for ``P`` masks the file's own palette is read once (header only)
  and the RGB colours are mapped back to indices in the graph. All ``P`` masks must then
  share one palette; :func:`validate_dataset` refuses a mask whose indices would come back
  as other indices (a colour repeated in the palette).
* ``"color"``: RGB(A) PNG whose colours are looked up in a given palette (colour of class
  ``i`` = ``palette[i]``; optional ``ignore_colors`` map to 255). An unknown colour raises
  an error naming the file and the colour, or becomes 255 with ``unknown_color="ignore"``.

Errors in the graph (unreadable file, image/mask size mismatch, unknown colour, label out
of range) surface as ``tf.errors.InvalidArgumentError`` while iterating, with the file
path in the message; :func:`validate_dataset` performs the same checks eagerly, with the
same decoder, and raises :class:`DatasetError`.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from spgnet_keras import preprocessing
from spgnet_keras.constants import IGNORE_LABEL, OUTPUT_STRIDE
from spgnet_keras.data import augment, decoding
from spgnet_keras.data.cityscapes import (
    CITYSCAPES_SPEC,
    LABEL_ID_TO_TRAIN_ID,
    cityscapes_files,
)
from spgnet_keras.data.decoding import IMAGE_EXTENSIONS
from spgnet_keras.data.spec import DatasetError, DatasetNotFoundError, DatasetSpec

MASK_EXTENSIONS: tuple[str, ...] = (".png",)
MASK_FORMATS = ("index", "color")
DATASET_NAMES = ("camvid", "cityscapes", "folder", "synthetic")

Pair = tuple[str, str]

CAMVID_SPEC = DatasetSpec(
    num_classes=11,
    class_names=("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol",
                 "Fence", "Car", "Pedestrian", "Bicyclist"),
    palette=((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
             (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
             (0, 128, 192)),
    ignore_index=IGNORE_LABEL,
    name="camvid",
)
"""CamVid 11-class description (same as the shipped ``meta.json``)."""


# --------------------------------------------------------------------------------------
# File listing
# --------------------------------------------------------------------------------------


def _require_dir(path: str | Path, what: str) -> Path:
    """Returns ``path`` as a ``Path`` or raises :class:`DatasetNotFoundError` naming it."""
    path = Path(path)
    if not path.exists():
        raise DatasetNotFoundError(f"{what} not found: {path}")
    if not path.is_dir():
        raise DatasetNotFoundError(f"{what} is not a folder: {path}")
    return path


def _files_by_stem(folder: Path, extensions: Sequence[str], what: str) -> dict[str, Path]:
    """Maps file stem -> path for files in ``folder`` with one of ``extensions``.

    Raises:
        DatasetError: If two files share a stem (e.g. ``a.png`` and ``a.jpg``).
    """
    by_stem: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in extensions:
            continue
        if path.stem in by_stem:
            raise DatasetError(
                f"Two {what} files share the stem {path.stem!r}: {by_stem[path.stem]} and {path}")
        by_stem[path.stem] = path
    return by_stem


def folder_files(
    images_dir: str | Path, masks_dir: str | Path, skip_unpaired: bool = False
) -> list[Pair]:
    """Pairs images with masks of the same file stem.

    Images may be any of ``IMAGE_EXTENSIONS`` (png, jpg, jpeg, bmp, gif, webp; any case); masks must be
    ``.png``. Masks without an image are ignored with a warning.

    Args:
        images_dir: Folder of images.
        masks_dir: Folder of label masks.
        skip_unpaired: If True, images without a mask are dropped with a warning instead of
            raising.

    Returns:
        ``(image_path, mask_path)`` string pairs sorted by stem.

    Raises:
        DatasetNotFoundError: (also a ``ValueError``) if a folder is missing, or no image /
            no pair is found.
        DatasetError: (a ``ValueError``) if an image has no mask (names the file) and
            ``skip_unpaired`` is False, or two images share a stem.
    """
    images_dir = _require_dir(images_dir, "Image folder")
    masks_dir = _require_dir(masks_dir, "Mask folder")
    images = _files_by_stem(images_dir, IMAGE_EXTENSIONS, "image")
    masks = _files_by_stem(masks_dir, MASK_EXTENSIONS, "mask")
    if not images:
        raise DatasetNotFoundError(
            f"No images ({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)}) in {images_dir}")
    unpaired = [images[stem] for stem in images if stem not in masks]
    if unpaired:
        listed = ", ".join(str(p) for p in unpaired[:5])
        more = f" (and {len(unpaired) - 5} more)" if len(unpaired) > 5 else ""
        message = f"No mask (.png of the same stem in {masks_dir}) for image(s): {listed}{more}"
        if not skip_unpaired:
            raise DatasetError(message)
        warnings.warn(message + "; skipped", stacklevel=2)
    orphans = sorted(stem for stem in masks if stem not in images)
    if orphans:
        warnings.warn(
            f"{len(orphans)} mask(s) in {masks_dir} have no image, e.g. {orphans[0]!r}",
            stacklevel=2)
    pairs = [(str(images[s]), str(masks[s])) for s in sorted(images) if s in masks]
    if not pairs:
        raise DatasetNotFoundError(f"No image/mask pairs in {images_dir} and {masks_dir}")
    return pairs


def camvid_files(root: str | Path, split: str) -> list[Pair]:
    """Lists pairs of a CamVid-style folder dataset: ``root/<split>/{images,labels}``.

    If ``root/<split>.txt`` exists its stems define the split (in that order) and every
    listed stem must have both files; otherwise the two folders are paired by stem with
    :func:`folder_files`. The synthetic dataset uses the same layout.

    Args:
        root: Dataset root.
        split: Split name, e.g. ``"train"`` or ``"val"``.

    Returns:
        ``(image_path, mask_path)`` string pairs.

    Raises:
        DatasetNotFoundError: If a folder or a listed file is missing (names it).
    """
    root = _require_dir(root, "Dataset root")
    images_dir = _require_dir(root / split / "images", f"Image folder of split {split!r}")
    masks_dir = _require_dir(root / split / "labels", f"Label folder of split {split!r}")
    split_list = root / f"{split}.txt"
    if not split_list.is_file():
        return folder_files(images_dir, masks_dir)
    stems = [line.strip() for line in split_list.read_text().splitlines() if line.strip()]
    if not stems:
        raise DatasetNotFoundError(f"Split list {split_list} is empty")
    pairs = []
    for stem in stems:
        image = next((images_dir / f"{stem}{ext}" for ext in IMAGE_EXTENSIONS
                      if (images_dir / f"{stem}{ext}").is_file()), None)
        if image is None:
            raise DatasetNotFoundError(
                f"{split_list} lists {stem!r} but no image {images_dir / stem}.<png|jpg|...>")
        mask = masks_dir / f"{stem}.png"
        if not mask.is_file():
            raise DatasetNotFoundError(f"No mask for image {image}: expected {mask}")
        pairs.append((str(image), str(mask)))
    return pairs


def dataset_spec(name: str, root: str | Path | None = None) -> DatasetSpec:
    """Returns the class description of a named dataset.

    Args:
        name: One of ``"camvid"``, ``"cityscapes"``, ``"folder"``, ``"synthetic"``.
        root: Dataset root; its ``meta.json`` is used when present (required for
            ``"folder"`` and ``"synthetic"``).

    Returns:
        The :class:`DatasetSpec`.

    Raises:
        ValueError: Unknown name.
        DatasetNotFoundError: ``meta.json`` required but missing.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {DATASET_NAMES}")
    if name == "cityscapes":
        return CITYSCAPES_SPEC
    meta = Path(root) / "meta.json" if root is not None else None
    if meta is not None and meta.is_file():
        return DatasetSpec.from_meta_json(meta, name=name)
    if name == "camvid":
        return CAMVID_SPEC
    raise DatasetNotFoundError(f"Dataset {name!r} needs a meta.json in its root, got {meta}")


def dataset_files(name: str, root: str | Path, split: str) -> list[Pair]:
    """Lists the ``(image, mask)`` pairs of a named dataset split.

    Args:
        name: One of :data:`DATASET_NAMES`.
        root: Dataset root folder.
        split: Split name.

    Returns:
        ``(image_path, mask_path)`` pairs (Cityscapes masks are ``*_labelIds.png``).
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {DATASET_NAMES}")
    if name == "cityscapes":
        return cityscapes_files(root, split)
    return camvid_files(root, split)


# --------------------------------------------------------------------------------------
# Eager validation (the pipeline's decoder, run eagerly)
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class ValidationReport:
    """Summary returned by :func:`validate_dataset`.

    Attributes:
        num_pairs: Number of pairs checked.
        class_pixel_counts: int64 ``[num_classes]`` pixel count of each class.
        ignore_pixels: Number of pixels equal to the ignore label.
        image_sizes: Distinct ``(height, width)`` sizes seen.
    """

    num_pairs: int
    class_pixel_counts: np.ndarray
    ignore_pixels: int
    image_sizes: set[tuple[int, int]]


def _colour_codes(rgb: np.ndarray) -> np.ndarray:
    """Packs ``[..., 3]`` uint8 colours into int64 ``r << 16 | g << 8 | b`` codes."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _colour_lookup(
    palette: Sequence[Sequence[int]], ignore_colors: Sequence[Sequence[int]] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Builds ``(codes, labels)`` for colour -> label lookup; first occurrence wins.

    Raises:
        ValueError: If the palette is empty or malformed.
    """
    palette = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
    ignore = np.asarray(ignore_colors, dtype=np.int64).reshape(-1, 3)
    if palette.size == 0:
        raise ValueError("A non-empty palette is needed to read colour masks")
    if palette.min() < 0 or palette.max() > 255 or (ignore.size and
                                                    (ignore.min() < 0 or ignore.max() > 255)):
        raise ValueError("Palette colours must be in 0..255")
    codes = np.concatenate([_colour_codes(palette), _colour_codes(ignore)])
    labels = np.concatenate([np.arange(len(palette)), np.full(len(ignore), IGNORE_LABEL)])
    codes, first = np.unique(codes, return_index=True)
    return codes, labels[first].astype(np.int64)


def _read_mask_numpy(
    path: str,
    mask_format: str,
    colour_lookup: tuple[np.ndarray, np.ndarray] | None,
    unknown_color: str,
    label_map: np.ndarray | None,
) -> np.ndarray:
    """Reads one mask into int64 labels with the pipeline's decoder (:mod:`.decoding`) and lookups.

    ``colour_lookup`` is the palette lookup of colour masks, or of palette (``P``) index
    masks, whose expanded colours are mapped back to indices as in the pipeline.

    Raises:
        DatasetError: A refused mask, an unknown colour with ``unknown_color="error"``, or a
            palette mask whose indices the pipeline would read as other indices.
    """
    try:
        pixels = decoding.read_mask(path, index=mask_format == "index")
    except ValueError as error:
        raise DatasetError(str(error)) from None
    if colour_lookup is None:
        labels = pixels[..., 0].astype(np.int64)
    else:
        rgb = decoding.to_rgb(pixels).numpy()
        labels = _colour_mask_to_labels(rgb, path, colour_lookup, unknown_color)
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
    rgb: np.ndarray, path: str, colour_lookup: tuple[np.ndarray, np.ndarray],
    unknown_color: str,
) -> np.ndarray:
    """Maps an RGB mask to labels with numpy; unknown colours error or become 255."""
    codes, labels = colour_lookup
    pixel_codes = _colour_codes(rgb)
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
    """Checks one pair; returns ``(labels, (height, width))`` or raises DatasetError."""
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
    values = np.unique(labels)
    bad = values[((values < 0) | (values >= num_classes)) & (values != ignore_index)]
    if bad.size:
        raise DatasetError(
            f"Mask {mask_path}: label value(s) {bad.tolist()[:10]} outside "
            f"[0, {num_classes}) and not the ignore label {ignore_index}")
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
    label_map: np.ndarray | None = None,
    max_errors: int = 10,
) -> ValidationReport:
    """Eagerly checks every pair before training, reading the files as the pipeline does.

    Images and masks are decoded by the pipeline's own rule (:mod:`spgnet_keras.data.decoding`,
    run eagerly), so a pair that passes reads the same in training and cannot fail there.
    Checks that each image decodes, each mask decodes in the expected format and has the
    image's size, and every label (after ``label_map``) is in ``[0, num_classes)`` or
    ``ignore_index``. All pairs are checked; up to ``max_errors`` problems are reported.

    Args:
        pairs: ``(image_path, mask_path)`` pairs.
        num_classes: Number of classes.
        ignore_index: Label value allowed besides the classes.
        mask_format: ``"index"`` or ``"color"``.
        palette: Class colours for ``"color"`` masks.
        ignore_colors: Extra colours mapped to ``ignore_index`` for ``"color"`` masks.
        unknown_color: ``"error"`` or ``"ignore"`` (unknown colours become 255).
        label_map: Optional uint8 ``[256]`` table applied to index masks (e.g.
            :data:`~spgnet_keras.data.cityscapes.LABEL_ID_TO_TRAIN_ID`).
        max_errors: Number of problems listed in the error message.

    Returns:
        A :class:`ValidationReport` with class pixel counts.

    Raises:
        DatasetError: Listing the offending files and values.
        ValueError: For bad arguments or no pairs.
    """
    _check_mask_options(mask_format, palette, unknown_color)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    pairs = list(pairs)
    if not pairs:
        raise DatasetNotFoundError("validate_dataset: no pairs given")
    if mask_format == "color":
        colour_lookup = _colour_lookup(palette, ignore_colors)
    else:
        index_palette = _shared_palette_of_index_masks([str(mask) for _, mask in pairs])
        colour_lookup = None if index_palette is None else _colour_lookup(index_palette, ignore_colors)

    def read_mask(path: str) -> np.ndarray:
        return _read_mask_numpy(path, mask_format, colour_lookup, unknown_color, label_map)

    counts = np.zeros(num_classes, dtype=np.int64)
    ignore_pixels = 0
    sizes: set[tuple[int, int]] = set()
    errors: list[str] = []
    for image_path, mask_path in pairs:
        try:
            labels, size = _check_pair(str(image_path), str(mask_path), num_classes,
                                       ignore_index, read_mask)
        except DatasetError as error:
            errors.append(str(error))
            continue
        sizes.add(size)
        valid = labels[labels != ignore_index]
        counts += np.bincount(valid.ravel(), minlength=num_classes)[:num_classes]
        ignore_pixels += labels.size - valid.size
    if errors:
        shown = "\n  ".join(errors[:max_errors])
        more = f"\n  ... and {len(errors) - max_errors} more" if len(errors) > max_errors else ""
        raise DatasetError(f"{len(errors)} of {len(pairs)} pairs are invalid:\n  {shown}{more}")
    return ValidationReport(len(pairs), counts, ignore_pixels, sizes)


def _check_mask_options(mask_format: str, palette, unknown_color: str) -> None:
    """Raises ValueError for inconsistent mask-format arguments."""
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"mask_format must be one of {MASK_FORMATS}, got {mask_format!r}")
    if mask_format == "color" and not palette:
        raise ValueError("mask_format='color' needs a palette")
    if unknown_color not in ("error", "ignore"):
        raise ValueError(f"unknown_color must be 'error' or 'ignore', got {unknown_color!r}")


def _shared_palette_of_index_masks(mask_paths: Sequence[str]) -> np.ndarray | None:
    """Reads PNG headers (not pixels) of all masks to see whether they are palette PNGs.

    Returns:
        ``None`` when all masks are mode ``L``; the shared ``[N, 3]`` palette when all are
        mode ``P``.

    Raises:
        DatasetError: Unsupported or mixed modes, or differing palettes (names a file).
    """
    first_palette = None
    modes: dict[str, str] = {}
    for path in mask_paths:
        try:
            with Image.open(path) as mask_image:
                mode = mask_image.mode
                palette = (np.asarray(mask_image.getpalette() or [], np.int64).reshape(-1, 3)
                           if mode == "P" else None)
        except Exception as error:
            raise DatasetError(f"Unreadable mask {path}: {error}") from error
        if mode not in ("L", "P"):
            raise DatasetError(
                f"Mask {path}: PNG mode {mode!r}; class-index masks must be 8-bit 'L' or 'P' "
                "(use mask_format='color' with a palette for RGB masks)")
        modes.setdefault(mode, path)
        if len(modes) > 1:
            raise DatasetError(f"Masks mix modes 'L' and 'P', e.g. {modes['L']} and {modes['P']}")
        if palette is not None:
            if first_palette is None:
                first_palette = palette
            elif not np.array_equal(palette, first_palette):
                raise DatasetError(
                    f"Palette mask {path} has a different palette from {modes['P']}; "
                    "convert masks to single-channel ('L') PNGs")
    if first_palette is not None and len(np.unique(_colour_codes(first_palette))) < len(
            first_palette):
        warnings.warn(
            f"Palette of {modes['P']} repeats colours; the lowest index is used for each colour",
            stacklevel=3)
    return first_palette


# --------------------------------------------------------------------------------------
# In-graph decoding
# --------------------------------------------------------------------------------------

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
            codes, labels = _colour_lookup(palette, ignore_colors)
            self.colour_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(codes, tf.int32), tf.constant(labels, tf.int32)),
                default_value=-1)
        self.label_map = None
        if label_map is not None:
            label_map = np.asarray(label_map)
            if label_map.shape != (256,):
                raise ValueError(f"label_map must have shape (256,), got {label_map.shape}")
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
        """Asserts labels are in ``[0, num_classes)`` or the ignore label."""
        if self.num_classes is None:
            return labels
        bad = tf.logical_and(
            tf.logical_or(labels < 0, labels >= self.num_classes), labels != IGNORE_LABEL)
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(bad)),
            ["Mask", path, f"has a label outside [0, {self.num_classes}) and != "
             f"{IGNORE_LABEL}:", _first_flagged(labels, bad)])
        with tf.control_dependencies([check]):
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


# --------------------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------------------


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
            raise ValueError(f"make_dataset({source!r}) needs root=<dataset folder>")
        spec = dataset_spec(source, root)
        return _Source(
            pairs=dataset_files(source, root, split),
            num_classes=num_classes or spec.num_classes,
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
    label_map: np.ndarray | None = None,
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
            for named datasets).
        mask_format: ``"index"`` or ``"color"`` (see module docstring).
        palette: Class colours for ``"color"`` masks (``palette[i]`` is class ``i``).
        ignore_colors: Colours of ``"color"`` masks that mean "ignore" (255).
        unknown_color: ``"error"`` (default) or ``"ignore"`` for colours not in the palette.
        label_map: Optional ``[256]`` table applied to index masks in the graph (set
            automatically to label id -> train id for ``"cityscapes"``).
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
    _check_mask_options(mask_format, palette, unknown_color)
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(skip_batches, bool) or not isinstance(skip_batches, int) or skip_batches < 0:
        raise ValueError(f"skip_batches must be an integer >= 0, got {skip_batches!r}")
    if skip_batches and not (training and repeat and drop_remainder is not False):
        raise ValueError("skip_batches is for repeated training streams (training=True, repeat=True, "
                         "drop_remainder=True)")
    if scales is not None and (len(scales) == 0 or any(not s > 0 for s in scales)):
        raise ValueError(f"Augmentation scales must be positive, got {list(scales)!r}")
    if pad_to_multiple is True:
        pad_to_multiple = OUTPUT_STRIDE
    if training and crop_size is None and batch_size > 1:
        raise ValueError("Training with batch_size > 1 needs a crop_size (random scaling "
                         "changes image sizes)")
    if not training and crop_size is not None:
        raise ValueError("crop_size is for training; in eval mode use pad_to_multiple "
                         "and/or batch_size=1")
    resolved = _resolve_source(source, split, root, num_classes)
    if label_map is not None:
        resolved.label_map = label_map
    if validate:
        if resolved.num_classes is None:
            raise ValueError("validate=True needs num_classes")
        validate_dataset(resolved.pairs, resolved.num_classes, mask_format=mask_format,
                         palette=palette, ignore_colors=ignore_colors,
                         unknown_color=unknown_color, label_map=resolved.label_map)
    index_palette = (_shared_palette_of_index_masks([m for _, m in resolved.pairs])
                     if mask_format == "index" else None)
    decode_mask = _MaskDecoder(
        mask_format, np.asarray(palette) if mask_format == "color" else index_palette,
        ignore_colors, unknown_color, resolved.label_map, resolved.num_classes)

    # The map functions use only explicit TF control flow (tf.cond), so AutoGraph is
    # switched off: faster tracing and no source-reading surprises.
    @tf.autograph.experimental.do_not_convert
    def load_pair(image_path: tf.Tensor, mask_path: tf.Tensor):
        """Decodes one pair to (uint8 [H, W, 3], int32 [H, W])."""
        return _assert_same_size(decode_image(image_path), decode_mask(mask_path),
                                 image_path, mask_path)

    shuffle = training if shuffle is None else shuffle
    drop_remainder = training if drop_remainder is None else drop_remainder
    num_pairs = len(resolved.pairs)
    images, masks = (list(column) for column in zip(*resolved.pairs))
    dataset = tf.data.Dataset.from_tensor_slices((images, masks))
    if cache:
        dataset = dataset.map(load_pair, num_parallel_calls=num_parallel_calls).cache()
    if shuffle:
        dataset = dataset.shuffle(num_pairs, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()

    if training:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

        @tf.autograph.experimental.do_not_convert
        def augment_example(example, example_seed):
            image, mask = example if cache else load_pair(*example)
            return augment.augment_pair(as_float_image(image), mask, example_seed,
                                        crop_size, scales, flip)

        # Files (or cached pairs) and their augmentation seeds are drawn first; a resumed
        # run skips the examples of the batches already trained on here, before any is
        # decoded or augmented, and then sees exactly the batches an uninterrupted run sees.
        dataset = tf.data.Dataset.zip((dataset, seeds)).skip(skip_batches * batch_size).map(
            augment_example, num_parallel_calls=num_parallel_calls)
    else:
        if not cache:
            dataset = dataset.map(load_pair, num_parallel_calls=num_parallel_calls)
        @tf.autograph.experimental.do_not_convert
        def prepare_eval_example(image, mask):
            image = as_float_image(image)
            if pad_to_multiple:
                image, mask = augment.pad_to_multiple(image, mask, pad_to_multiple)
            return image, mask

        dataset = dataset.map(prepare_eval_example, num_parallel_calls=num_parallel_calls)

    if training and crop_size is not None:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    else:
        dataset = dataset.padded_batch(
            batch_size,
            padding_values=(tf.constant(preprocessing.BATCH_PAD_SENTINEL, tf.float32),
                            tf.constant(IGNORE_LABEL, tf.int32)),
            drop_remainder=drop_remainder)
        dataset = dataset.map(lambda images, masks: (preprocessing.fill_batch_padding(images), masks))
    options = tf.data.Options()
    options.deterministic = True  # parallel maps keep element order: reproducible batches
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
