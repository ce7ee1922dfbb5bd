"""The one rule for class names and colours: what a class list and a palette must be.

Used by the dataset description (`spgnet_keras.data.DatasetSpec`), the model (`SPGNet(...,
class_names=..., palette=...)` keeps them in its config), the exporters and the figures.
Plain Python and NumPy: every floor of the package may import it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from spgnet_keras.errors import InvalidInputError

MIN_CLASSES = 2
"""Fewest classes a segmentation model, dataset or metric accepts: with one class the softmax
cross-entropy is 0 for every pixel and nothing trains (foreground/background is 2 classes)."""


def check_num_classes(num_classes, who: str = "num_classes") -> int:
    """`num_classes` as an int; InvalidInputError unless it is an integer >= `MIN_CLASSES`."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise InvalidInputError(f"`{who}` must be an integer >= {MIN_CLASSES}, got {num_classes!r}.")
    if num_classes < MIN_CLASSES:
        raise InvalidInputError(
            f"`{who}` must be at least {MIN_CLASSES}, got {num_classes}: with one class the softmax "
            "cross-entropy is 0 for every pixel and the model cannot learn (for foreground/background, use 2 classes)."
        )
    return int(num_classes)


def default_palette(num_classes: int) -> np.ndarray:
    """The PASCAL VOC bit-interleaved palette, `uint8 [num_classes, 3]` (distinct colours)."""
    palette = np.zeros((num_classes, 3), np.uint8)
    for index in range(num_classes):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def default_class_names(num_classes: int) -> tuple[str, ...]:
    """`("class_0", "class_1", ...)`: the names of classes nobody named."""
    return tuple(f"class_{index}" for index in range(num_classes))


def check_class_names(class_names: Sequence[str], num_classes: int | None = None,
                      who: str = "class_names") -> tuple[str, ...]:
    """The names as a tuple of strings; ValueError unless there is one non-empty, distinct name
    per class (`num_classes` when given)."""
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise InvalidInputError(f"{who} must be a list of names, got {class_names!r}.")
    names = tuple(class_names)
    bad = [name for name in names if not isinstance(name, str) or not name.strip()]
    if bad:
        raise InvalidInputError(f"{who}: every class name must be a non-empty string, got {bad[0]!r}.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidInputError(f"{who}: the name {repeated[0]!r} is given to more than one class.")
    if num_classes is not None and len(names) != num_classes:
        raise InvalidInputError(f"{who}: {len(names)} names for {num_classes} classes.")
    return names


def check_palette(palette, num_classes: int | None = None, who: str = "palette") -> tuple[tuple[int, int, int], ...]:
    """The colours as a tuple of `(r, g, b)` integer triples; ValueError unless each is three
    integers in 0..255 and there is one per class (`num_classes` when given)."""
    try:
        array = np.asarray(palette)
    except (TypeError, ValueError):
        array = np.asarray([], dtype=object)
    if array.ndim != 2 or array.shape[1:] != (3,) or array.shape[0] < 1:
        raise InvalidInputError(f"{who} must be a list of (r, g, b) colours, got {palette!r}.")
    if not np.issubdtype(array.dtype, np.number) or (array != np.round(array)).any() \
            or array.min() < 0 or array.max() > 255:
        raise InvalidInputError(f"{who}: colour values must be integers in 0..255, got {palette!r}.")
    if num_classes is not None and len(array) != num_classes:
        raise InvalidInputError(f"{who}: {len(array)} colours for {num_classes} classes.")
    return tuple(tuple(int(value) for value in colour) for colour in array)
