"""Mask formats: how a mask file's pixels become class labels (shared by the dataset check
and the ``tf.data`` pipeline).

* ``"index"``: 8-bit grey PNG whose values are class indices (PIL mode ``L``), or a
  palette PNG (mode ``P``) whose *indices* are the classes. TF's PNG decoder expands
  palette PNGs to RGB, so for ``P`` masks the file's own palette is read once (header only)
  and the RGB colours are mapped back to indices. All ``P`` masks must then share one
  palette; :func:`~spgnet_keras.data.validate_dataset` refuses a mask whose indices would
  come back as other indices (a colour repeated in the palette).
* ``"color"``: RGB(A) PNG whose colours are looked up in a given palette (colour of class
  ``i`` = ``palette[i]``; optional ``ignore_colors`` map to 255). An unknown colour raises
  an error naming the file and the colour, or becomes 255 with ``unknown_color="ignore"``.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from PIL import Image

from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.data.spec import DatasetError

MASK_FORMATS = ("index", "color")


def colour_codes(rgb: np.ndarray) -> np.ndarray:
    """Packs ``[..., 3]`` uint8 colours into int64 ``r << 16 | g << 8 | b`` codes."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def colour_lookup(
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
    codes = np.concatenate([colour_codes(palette), colour_codes(ignore)])
    labels = np.concatenate([np.arange(len(palette)), np.full(len(ignore), IGNORE_LABEL)])
    codes, first = np.unique(codes, return_index=True)
    return codes, labels[first].astype(np.int64)


def check_mask_options(mask_format: str, palette, unknown_color: str) -> None:
    """Raises ValueError for inconsistent mask-format arguments."""
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"mask_format must be one of {MASK_FORMATS}, got {mask_format!r}")
    if mask_format == "color" and not palette:
        raise ValueError("mask_format='color' needs a palette")
    if unknown_color not in ("error", "ignore"):
        raise ValueError(f"unknown_color must be 'error' or 'ignore', got {unknown_color!r}")


def shared_palette_of_index_masks(mask_paths: Sequence[str]) -> np.ndarray | None:
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
    if first_palette is not None and len(np.unique(colour_codes(first_palette))) < len(
            first_palette):
        warnings.warn(
            f"Palette of {modes['P']} repeats colours; the lowest index is used for each colour",
            stacklevel=3)
    return first_palette
