"""Palettes, colour maps, overlays and the figure helpers (Agg canvas, saving, legends).

Figures are built on `matplotlib.figure.Figure` with the non-interactive Agg canvas (no
`pyplot`, so no global backend or figure state is touched); save them with `save_figure` or
`figure.savefig`. Colours, palettes and overlays need only NumPy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from spgnet_keras.classes import check_palette, default_palette
from spgnet_keras.errors import InvalidInputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["colorize", "default_palette", "legend_handles", "new_figure", "overlay", "overlay_figure", "resolve_palette",
           "save_figure"]


def new_figure(figsize):
    """A matplotlib Figure on the non-interactive Agg canvas (matplotlib is imported only
    by the figure functions: colours, palettes and overlays need only NumPy)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure


def _check_palette(palette, source: str) -> np.ndarray:
    return np.asarray(check_palette(palette, who=f"Palette {source}"), np.uint8)


def resolve_palette(palette=None, num_classes: int | None = None) -> np.ndarray:
    """Returns a palette as `uint8 [K, 3]`.

    Args:
        palette: `"camvid"`, `"cityscapes"` (19 train-id colours), a file (a JSON list
            of colours, a JSON object with a `"palette"` key such as a dataset
            `meta.json`, or a text file with one `r g b` / `r,g,b` line per class),
            an array-like of colours, or None for `default_palette`.
        num_classes: Number of classes the palette must cover (checked when given).

    Raises:
        ValueError: Unknown name, unreadable file, or too few colours.
    """
    if palette is None:
        if num_classes is None:
            raise InvalidInputError("resolve_palette(None) needs num_classes.")
        result = default_palette(num_classes)
    elif isinstance(palette, (str, os.PathLike)):
        from spgnet_keras.data.registry import builtin_spec

        spec = builtin_spec(palette)
        result = _check_palette(spec.palette, spec.name) if spec else _read_palette_file(Path(palette))
    else:
        result = _check_palette(palette, "given")
    if num_classes is not None and len(result) < num_classes:
        raise InvalidInputError(f"Palette has {len(result)} colours but the model predicts {num_classes} classes.")
    return result


def _read_palette_file(path: Path) -> np.ndarray:
    if not path.is_file():
        from spgnet_keras.data.registry import BUILTIN_SPECS

        raise InvalidInputError(f"Palette must be one of {tuple(BUILTIN_SPECS)} or an existing file, got {str(path)!r}.")
    text = path.read_text()
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        try:
            content = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidInputError(f"Palette file {path} is not valid JSON: {error}") from None
        if isinstance(content, dict):
            if "palette" not in content:
                raise InvalidInputError(f"Palette file {path} has no 'palette' key.")
            content = content["palette"]
        return _check_palette(content, str(path))
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            rows.append([int(v) for v in line.replace(",", " ").split()])
        except ValueError:
            raise InvalidInputError(f"Palette file {path}, line {number}: expected 'r g b', got {line!r}.") from None
    return _check_palette(rows, str(path))


def colorize(class_map, palette, ignore_color=(0, 0, 0)) -> np.ndarray:
    """Colours a class map: `uint8 [H, W, 3]` with `palette[class]` per pixel.

    Args:
        class_map: Integer array `[H, W]`.
        palette: Anything `resolve_palette` accepts (not None).
        ignore_color: Colour of values outside the palette (e.g. the ignore label 255).
    """
    palette = resolve_palette(palette)
    class_map = np.asarray(class_map)
    if not np.issubdtype(class_map.dtype, np.integer):
        raise InvalidInputError(f"class_map must be an integer array, got dtype {class_map.dtype}.")
    table = np.concatenate([palette, np.asarray(ignore_color, np.uint8).reshape(1, 3)], axis=0)
    indices = np.where((class_map >= 0) & (class_map < len(palette)), class_map, len(palette))
    return table[indices]


def overlay(image, class_map, palette, alpha: float = 0.5) -> np.ndarray:
    """Blends the colourised class map over the image: `(1-alpha)*image + alpha*colour`.

    Pixels whose class lies outside the palette (e.g. 255 = ignore) keep the image.

    Args:
        image: `uint8 [H, W, 3]` RGB.
        class_map: Integer `[H, W]` of the same size.
        palette: Anything `resolve_palette` accepts.
        alpha: Weight of the colours, in `[0, 1]`.

    Returns:
        `uint8 [H, W, 3]`.
    """
    if not 0.0 <= alpha <= 1.0:
        raise InvalidInputError(f"alpha must be in [0, 1], got {alpha}.")
    image = np.asarray(image)
    class_map = np.asarray(class_map)
    if image.ndim != 3 or image.shape[-1] != 3 or image.shape[:2] != class_map.shape:
        raise InvalidInputError(f"overlay: image {image.shape} and class map {class_map.shape} sizes differ.")
    palette = resolve_palette(palette)
    colours = colorize(class_map, palette).astype(np.float32)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    valid = ((class_map >= 0) & (class_map < len(palette)))[..., None]
    return np.where(valid, np.clip(np.round(blended), 0, 255), image).astype(np.uint8)



def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Saves a figure (format from the suffix), creating parent folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def legend_handles(class_names: Sequence[str], palette, classes: Sequence[int] | None = None) -> list:
    """Matplotlib legend patches, one per class, in the class colours.

    Args:
        class_names: sequence of str. One name per class.
        palette: Anything `resolve_palette` accepts.
        classes: sequence of int. The classes to list (default: all of them).

    Returns:
        A list of `matplotlib.patches.Patch` for `figure.legend(handles=...)`.
    """
    from matplotlib.patches import Patch

    palette = resolve_palette(palette, len(class_names))
    indices = range(len(class_names)) if classes is None else classes
    return [Patch(facecolor=palette[i] / 255.0, edgecolor="black", linewidth=0.5, label=class_names[i])
            for i in indices]


def overlay_figure(image, prediction, palette, class_names: Sequence[str], label=None, alpha: float = 0.5,
                   panel_width: float = 4.0) -> Figure:
    """Image, prediction overlay (and ground truth when given) side by side with a colour legend.

    Args:
        image: `uint8 [H, W, 3]` RGB.
        prediction: Integer class map `[H, W]`.
        palette: Anything `resolve_palette` accepts.
        class_names: sequence of str. One name per class (the legend lists the classes
            present in the prediction or the ground truth).
        label: Optional integer ground truth `[H, W]` (255 = ignore, drawn black).
        alpha: float. Colour weight of the overlay.
        panel_width: float. Width of one panel in inches (at 120 dpi, 4.0 = 480 pixels).

    Returns:
        A `matplotlib.figure.Figure`.
    """
    image, prediction = np.asarray(image), np.asarray(prediction)
    palette = resolve_palette(palette, len(class_names))
    panels = [("image", image), ("prediction", overlay(image, prediction, palette, alpha))]
    if label is not None:
        panels.append(("ground truth", colorize(np.asarray(label), palette)))
    height, width = image.shape[:2]
    rows = -(-len(class_names) // 6) if label is not None else 1
    title_space, legend_space = 0.4, 0.3 + 0.25 * rows
    total = panel_width * height / width + title_space + legend_space
    figure = new_figure((panel_width * len(panels), total))
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (title, picture) in zip(axes, panels):
        axis.imshow(picture, interpolation="nearest")
        axis.set_title(title)
        axis.set_axis_off()
    shown = np.unique(prediction) if label is None else np.union1d(np.unique(prediction), np.unique(label))
    shown = [int(c) for c in shown if 0 <= c < len(class_names)]
    figure.subplots_adjust(left=0.01, right=0.99, top=1 - title_space / total, bottom=legend_space / total,
                           wspace=0.03)
    figure.legend(handles=legend_handles(class_names, palette, shown), loc="lower center",
                  bbox_to_anchor=(0.5, 0.0), ncol=min(len(shown), 6) or 1, fontsize=9, frameon=False)
    return figure
