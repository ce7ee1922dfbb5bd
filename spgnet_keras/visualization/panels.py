"""The pictures of the evaluation report: class maps with the ignore label chequered, error
maps, and strips of enlarged panels (NumPy only)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.visualization.colors import colorize

__all__ = ["ERROR_COLOR", "colour_labels", "enlarge", "error_map", "strip"]

ERROR_COLOR = (230, 25, 25)
"""Colour of a wrong pixel in an error map."""


def _checker(height: int, width: int, cell: int = 4) -> np.ndarray:
    rows, cols = np.indices((height, width)) // cell
    grey = np.where((rows + cols) % 2 == 0, 154, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def colour_labels(class_map, palette, ignore_index: int = IGNORE_LABEL) -> np.ndarray:
    """`colorize` with the ignored pixels chequered grey and white (no palette colour is a chequer)."""
    colours = colorize(class_map, palette)
    ignored = np.asarray(class_map) == ignore_index
    return np.where(ignored[..., None], _checker(*ignored.shape), colours)


def error_map(image, label, prediction, ignore_index: int = IGNORE_LABEL) -> np.ndarray:
    """Wrong pixels in red over a dimmed grey image; ignored pixels chequered.

    Args:
        image: `uint8 [H, W, 3]` RGB.
        label: Integer ground truth `[H, W]`.
        prediction: Integer prediction `[H, W]`.
        ignore_index: int. Label value that is not scored.

    Returns:
        `uint8 [H, W, 3]`.
    """
    image, label, prediction = np.asarray(image), np.asarray(label), np.asarray(prediction)
    grey = image.astype(np.float32).mean(axis=-1, keepdims=True) * 0.45 + 60
    picture = np.repeat(grey, 3, axis=-1).astype(np.uint8)
    wrong = (label != prediction) & (label != ignore_index)
    picture[wrong] = ERROR_COLOR
    ignored = label == ignore_index
    return np.where(ignored[..., None], _checker(*label.shape), picture)


def enlarge(picture: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (class edges stay sharp)."""
    return np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1) if factor > 1 else picture


def strip(panels: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    """Same-height `uint8 [H, W, 3]` panels side by side, `gap` white columns apart."""
    height = panels[0].shape[0]
    spacer = np.full((height, gap, 3), 255, np.uint8)
    parts = []
    for panel in panels:
        parts += [panel, spacer]
    return np.concatenate(parts[:-1], axis=1)
