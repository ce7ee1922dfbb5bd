"""Mask formats: how a mask file's pixels become class labels (shared by the dataset check
and the `tf.data` pipeline).

* `"index"`: 8-bit grey PNG whose values are class indices (PIL mode `L`), or a
  palette PNG (mode `P`) whose *indices* are the classes. TF's PNG decoder expands
  palette PNGs to RGB, so for `P` masks the file's own palette is read once (header only)
  and the RGB colours are mapped back to indices. All `P` masks must then share one
  palette; `spgnet_keras.data.validate_dataset` refuses a mask whose indices would
  come back as other indices (a colour repeated in the palette).
* `"color"`: RGB(A) PNG whose colours are looked up in a given palette (colour of class
  `i` = `palette[i]`; optional `ignore_colors` map to 255). An unknown colour raises
  an error naming the file and the colour, or becomes 255 with `unknown_color="ignore"`.
* `"auto"`: `"index"` when the masks are grey (`L`) or palette (`P`) PNGs, `"color"`
  when they are RGB(A) PNGs (read from the PNG headers, `resolve_mask_format`).

After decoding, the labels may be remapped (`label_table`, in this order, as
mmsegmentation's `LoadAnnotations`): a dataset's own table (Cityscapes label id -> train
id), then `reduce_zero_label` (0 = "unlabelled" becomes 255 and every other class moves
down by one, as in ADE20K; 255 stays 255), then a user's `label_map` `{old: new}` that
merges classes (`{3: 1}`) or drops them (`{7: 255}`); values it does not name are kept.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Sequence

import numpy as np
from PIL import Image

from spgnet_keras.classes import check_palette
from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.data.spec import DatasetError
from spgnet_keras.errors import InvalidInputError

MASK_FORMATS = ("index", "color")
MASK_FORMAT_CHOICES = MASK_FORMATS + ("auto",)
_COLOUR_MODES = ("RGB", "RGBA")
_GREY_INDEX_MODES = ("L", "I;16", "I;16B", "I", "1")  # Pillow's modes of 8-, 16- and 1-bit grey PNGs
_INDEX_MODES = (*_GREY_INDEX_MODES, "P")


def colour_codes(rgb: np.ndarray) -> np.ndarray:
    """Packs `[..., 3]` uint8 colours into int64 `r << 16 | g << 8 | b` codes."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def colour_lookup(
    palette: Sequence[Sequence[int]], ignore_colors: Sequence[Sequence[int]] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Builds `(codes, labels)` for colour -> label lookup; first occurrence wins.

    Raises:
        ValueError: If the palette is empty or malformed.
    """
    palette = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
    ignore = np.asarray(ignore_colors, dtype=np.int64).reshape(-1, 3)
    if palette.size == 0:
        raise InvalidInputError("A non-empty palette is needed to read colour masks")
    if palette.min() < 0 or palette.max() > 255 or (ignore.size and
                                                    (ignore.min() < 0 or ignore.max() > 255)):
        raise InvalidInputError("Palette colours must be in 0..255")
    codes = np.concatenate([colour_codes(palette), colour_codes(ignore)])
    labels = np.concatenate([np.arange(len(palette)), np.full(len(ignore), IGNORE_LABEL)])
    codes, first = np.unique(codes, return_index=True)
    return codes, labels[first].astype(np.int64)


def check_mask_options(mask_format: str, palette, unknown_color: str) -> None:
    """Raises ValueError for inconsistent mask-format arguments (`mask_format` resolved:
    `"index"` or `"color"`)."""
    if mask_format not in MASK_FORMATS:
        raise InvalidInputError(f"mask_format must be one of {MASK_FORMAT_CHOICES}, got {mask_format!r}")
    if mask_format == "color" and not palette:
        raise InvalidInputError("mask_format='color' needs a palette")
    if unknown_color not in ("error", "ignore"):
        raise InvalidInputError(f"unknown_color must be 'error' or 'ignore', got {unknown_color!r}")


def shared_palette_of_index_masks(mask_paths: Sequence[str]) -> np.ndarray | None:
    """Reads PNG headers (not pixels) of all masks to see whether they are palette PNGs.

    Returns:
        `None` when all masks are mode `L`; the shared `[N, 3]` palette when all are
        mode `P`.

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
        if mode not in _INDEX_MODES:
            raise DatasetError(
                f"Mask {path}: PNG mode {mode!r}; class-index masks must be grey ('L', 16-bit 'I;16', 1-bit '1') "
                "or palette 'P' PNGs (use mask_format='color' with a palette for RGB masks)")
        modes.setdefault("L" if mode in _GREY_INDEX_MODES else "P", path)
        if len(modes) > 1:
            raise DatasetError(f"Masks mix modes 'L' and 'P', e.g. {modes['L']} and {modes['P']}")
        if palette is not None:
            if first_palette is None:
                first_palette = palette
            elif not np.array_equal(palette, first_palette):
                raise DatasetError(
                    f"Palette mask {path} has a different palette from {modes['P']}; "
                    "convert masks to single-channel ('L') PNGs")
    if first_palette is not None and len(np.unique(colour_codes(first_palette))) < len(
            first_palette):
        warnings.warn(
            f"Palette of {modes['P']} repeats colours: a pixel of such a colour reads as its lowest index (the "
            "dataset check names any mask whose stored indices read back differently)",
            stacklevel=3)
    return first_palette


def resolve_mask_format(mask_format: str, mask_paths: Sequence[str]) -> str:
    """`"index"` or `"color"`: `mask_format` itself, or for `"auto"` what the masks'
    PNG headers say (grey/palette: index; RGB/RGBA: color).

    Raises:
        ValueError: An unknown format name.
        DatasetError: `"auto"` and masks that mix colour and index PNGs, or a mask of
            another mode (names the files).
    """
    if mask_format not in MASK_FORMAT_CHOICES:
        raise InvalidInputError(f"mask_format must be one of {MASK_FORMAT_CHOICES}, got {mask_format!r}")
    if mask_format != "auto":
        return mask_format
    first: dict[str, str] = {}
    for path in mask_paths:
        try:
            with Image.open(path) as mask_image:
                mode = mask_image.mode
        except Exception as error:
            raise DatasetError(f"Unreadable mask {path}: {error}") from None
        if mode not in _COLOUR_MODES + _INDEX_MODES:
            raise DatasetError(
                f"Mask {path}: PNG mode {mode!r}; masks must be class-index PNGs (grey 'L', 16-bit 'I;16', "
                "1-bit '1', or palette 'P') or colour-coded RGB PNGs")
        kind = "color" if mode in _COLOUR_MODES else "index"
        first.setdefault(kind, str(path))
        if len(first) > 1:
            raise DatasetError(
                f"Masks mix colour-coded RGB PNGs (e.g. {first['color']}) and class-index PNGs "
                f"(e.g. {first['index']}); convert them to one kind")
    return next(iter(first), "index")


def parse_label_map(label_map) -> dict[int, int] | None:
    """`{old: new}` with integer keys and values in 0..255 (keys may be strings, as JSON
    and YAML write them); None stays None.

    Raises:
        ValueError: Not a mapping, or a key or value that is not an integer in 0..255.
    """
    if label_map is None:
        return None
    if not isinstance(label_map, dict):
        raise InvalidInputError(f"label_map must be a mapping {{old: new}}, e.g. {{3: 1, 7: 255}}, got {label_map!r}")
    parsed = {}
    for key, value in label_map.items():
        try:
            old, new = int(str(key).strip()), int(value)
        except (TypeError, ValueError):
            raise InvalidInputError(f"label_map entry {key!r}: {value!r} must map a label value to a label value "
                             "(integers in 0..255)") from None
        if isinstance(value, bool) or isinstance(value, float) and value != new or \
                not (0 <= old <= 255 and 0 <= new <= 255):
            raise InvalidInputError(f"label_map entry {key!r}: {value!r} must map a label value to a label value "
                             "(integers in 0..255)")
        parsed[old] = new
    return parsed


def label_table(label_map=None, reduce_zero_label: bool = False, base: np.ndarray | None = None
                ) -> np.ndarray | None:
    """The `int64 [256]` lookup `decoded value -> label`: `base` (a dataset's own table),
    then `reduce_zero_label`, then `label_map` (see the module docstring); None when there
    is nothing to remap.

    Args:
        label_map: `{old: new}` (`parse_label_map`), or a whole `[256]` table, which
            then replaces `base`.
        reduce_zero_label: ADE20K's convention (module docstring).
        base: A dataset's own table, e.g. Cityscapes label id -> train id.

    Raises:
        ValueError: A bad `label_map` or a table that is not 256 values.
    """
    if label_map is not None and not isinstance(label_map, dict):
        base, label_map = label_map, None
    mapping = parse_label_map(label_map)
    if base is None and not reduce_zero_label and not mapping:
        return None
    table = np.arange(256, dtype=np.int64) if base is None else np.asarray(base, np.int64).copy()
    if table.shape != (256,):
        raise InvalidInputError(f"A label table must have 256 entries, got shape {table.shape}")
    if reduce_zero_label:
        table = np.where(table == 0, IGNORE_LABEL, np.where(table == IGNORE_LABEL, IGNORE_LABEL, table - 1))
    if mapping:
        remapped = table.copy()
        for old, new in mapping.items():
            remapped[table == old] = new
        table = remapped
    return table


@dataclasses.dataclass(frozen=True)
class MaskStyle:
    """How a dataset's mask pixels become class labels: the mask options of
    `spgnet_keras.data.make_train_dataset`, `make_eval_dataset` and
    `spgnet_keras.data.validate_dataset` in one value, recorded in a run folder's `data.json`.

    Attributes:
        mask_format: str. `"index"`, `"color"` or `"auto"` (module docstring).
        palette: tuple of (int, int, int). The colour of each class, for `"color"` masks.
        reduce_zero_label: bool. 0 becomes 255, every other class moves down by one (ADE20K).
        label_map: dict. `{old: new}` applied after `reduce_zero_label`.
        ignore_colors: tuple of (int, int, int). Colours of `"color"` masks that mean "ignore".
        unknown_color: str. `"error"` or `"ignore"` for colours not in the palette.

    Example:

    ```python
    style = MaskStyle(mask_format="color", palette=[(128, 64, 128), (70, 70, 70)])
    train = make_train_dataset(pairs, batch_size=8, crop_size=(512, 512), mask_style=style)
    ```
    """

    mask_format: str = "index"
    palette: tuple | None = None
    reduce_zero_label: bool = False
    label_map: dict | None = None
    ignore_colors: tuple = ()
    unknown_color: str = "error"

    def __post_init__(self):
        if self.mask_format not in MASK_FORMAT_CHOICES:
            raise InvalidInputError(f"mask_format must be one of {MASK_FORMAT_CHOICES}, got {self.mask_format!r}")
        if self.palette is not None:
            object.__setattr__(self, "palette", check_palette(self.palette, who="mask palette"))
        object.__setattr__(self, "label_map", parse_label_map(self.label_map))
        object.__setattr__(self, "ignore_colors", tuple(tuple(int(v) for v in c) for c in self.ignore_colors))

    def resolved(self, mask_paths: Sequence[str]) -> "MaskStyle":
        """This style with `"auto"` replaced by what the masks are (`resolve_mask_format`).

        Raises:
            DatasetError: The masks are colour PNGs but no palette says what the colours mean.
        """
        mask_format = resolve_mask_format(self.mask_format, mask_paths)
        if mask_format == "color" and not self.palette:
            raise DatasetError(
                f"The masks (e.g. {mask_paths[0]}) are colour-coded RGB PNGs: give the colour of each class in a "
                "classes file (classes=..., --classes FILE; one 'name,r,g,b' line per class)")
        return dataclasses.replace(self, mask_format=mask_format)

    def arguments(self, base_table: np.ndarray | None = None) -> dict:
        """Keyword arguments of `make_dataset` / `validate_dataset` / `MaskReader`."""
        return dict(mask_format=self.mask_format,
                    palette=None if self.palette is None else [list(c) for c in self.palette],
                    ignore_colors=[list(c) for c in self.ignore_colors], unknown_color=self.unknown_color,
                    label_map=label_table(self.label_map, self.reduce_zero_label, base_table))

    def to_dict(self) -> dict:
        """JSON-ready (label-map keys as strings, as JSON writes them)."""
        record = dataclasses.asdict(self)
        record["palette"] = None if self.palette is None else [list(c) for c in self.palette]
        record["ignore_colors"] = [list(c) for c in self.ignore_colors]
        record["label_map"] = None if self.label_map is None else {str(k): v for k, v in self.label_map.items()}
        return record

    @classmethod
    def from_dict(cls, record: dict) -> "MaskStyle":
        return cls(**{key: record[key] for key in record if key in {f.name for f in dataclasses.fields(cls)}})


def mask_arguments(mask_style: MaskStyle | None = None, base_table: np.ndarray | None = None, *,
                   mask_format: str = "index", palette=None, ignore_colors=(), unknown_color: str = "error",
                   label_map=None, reduce_zero_label: bool = False) -> dict:
    """The mask keyword arguments of `MaskReader` (and the pipeline's decoder) from a
    `MaskStyle` or from the separate mask keywords, not both.

    Args:
        mask_style: MaskStyle. The mask options in one value, or None.
        base_table: array. The dataset's own `[256]` label table, or None.
        mask_format, palette, ignore_colors, unknown_color, label_map, reduce_zero_label:
            The separate keywords (`MaskStyle`'s fields; `label_map` may also be a whole
            `[256]` table, which replaces `base_table`).

    Returns:
        `dict(mask_format, palette, ignore_colors, unknown_color, label_map)`, the label map
        composed into one table (`label_table`) or None.

    Raises:
        InvalidInputError: `mask_style` together with a separate keyword.
    """
    if mask_style is None:
        return dict(mask_format=mask_format, palette=palette, ignore_colors=ignore_colors,
                    unknown_color=unknown_color, label_map=label_table(label_map, reduce_zero_label, base_table))
    given = [name for name, is_given in [
        ("mask_format", mask_format != "index"), ("palette", palette is not None),
        ("ignore_colors", len(ignore_colors) > 0), ("unknown_color", unknown_color != "error"),
        ("label_map", label_map is not None), ("reduce_zero_label", bool(reduce_zero_label))] if is_given]
    if given:
        raise InvalidInputError(f"Give the mask options either as mask_style=MaskStyle(...) or as keywords, not both "
                                f"(got mask_style and {', '.join(given)})")
    if not isinstance(mask_style, MaskStyle):
        raise InvalidInputError(f"mask_style must be a MaskStyle, got {type(mask_style).__name__}")
    return mask_style.arguments(base_table)
