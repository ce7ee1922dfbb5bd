"""Visualisation: colour maps, overlays, guided attention (paper Sec 4.5), confusion
matrices and training curves.

Figures are built on ``matplotlib.figure.Figure`` with the non-interactive Agg canvas
(no ``pyplot``, so no global backend or figure state is touched); save them with
:func:`save_figure` or ``figure.savefig``.

Guided attention (Sec 4.5, Fig 4). The SPG module between stage ``s`` and ``s+1`` computes
the guided attention ``m = sigmoid(conv1x1(x_l))`` (``H/4 x W/4 x D``) from the per-class
logits ``x_l`` with a ``1x1`` convolution whose kernel is a ``C x D`` matrix. For class
``c`` the paper takes row ``c`` of that matrix, selects the ``top_k = 15`` channels with the
largest weights (signed values, not magnitudes) and shows the ``l2`` norm of ``m`` over
those channels, normalised to ``[0, 1]`` (0 = blue, 1 = red). See
:func:`guided_attention_maps` for the exact steps.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from spgnet_keras.classes import check_palette, default_palette
from spgnet_keras.errors import InvalidInputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "attention_figure",
    "attention_matrix",
    "colorize",
    "default_palette",
    "guided_attention_maps",
    "overlay",
    "plot_confusion_matrix",
    "plot_training_curves",
    "read_csv_log",
    "resolve_palette",
    "save_figure",
    "top_attention_channels",
]

TOP_K = 15
"""Channels per class in the paper's guided-attention visualisation (Sec 4.5)."""


# --------------------------------------------------------------------------------------
# Palettes, colour maps and overlays
# --------------------------------------------------------------------------------------


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
    """Returns a palette as ``uint8 [K, 3]``.

    Args:
        palette: ``"camvid"``, ``"cityscapes"`` (19 train-id colours), a file (a JSON list
            of colours, a JSON object with a ``"palette"`` key such as a dataset
            ``meta.json``, or a text file with one ``r g b`` / ``r,g,b`` line per class),
            an array-like of colours, or None for :func:`default_palette`.
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
    """Colours a class map: ``uint8 [H, W, 3]`` with ``palette[class]`` per pixel.

    Args:
        class_map: Integer array ``[H, W]``.
        palette: Anything :func:`resolve_palette` accepts (not None).
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
    """Blends the colourised class map over the image: ``(1-alpha)*image + alpha*colour``.

    Pixels whose class lies outside the palette (e.g. 255 = ignore) keep the image.

    Args:
        image: ``uint8 [H, W, 3]`` RGB.
        class_map: Integer ``[H, W]`` of the same size.
        palette: Anything :func:`resolve_palette` accepts.
        alpha: Weight of the colours, in ``[0, 1]``.

    Returns:
        ``uint8 [H, W, 3]``.
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


# --------------------------------------------------------------------------------------
# Guided attention (Sec 4.5)
# --------------------------------------------------------------------------------------


def _spg_layer(model, stage: int):
    from spgnet_keras.layers.spg import SemanticPredictionGuidance

    if isinstance(model, SemanticPredictionGuidance):
        return model
    if not hasattr(model, "guidance_layer"):
        raise InvalidInputError("Expected an SPGNet model (or its SemanticPredictionGuidance layer).")
    if getattr(model, "guidance", "spg") != "spg":
        raise InvalidInputError(f"Guided attention needs guidance='spg'; this model uses {model.guidance!r}.")
    layer = model.guidance_layer(stage)
    if not isinstance(layer, SemanticPredictionGuidance):
        raise InvalidInputError(f"Layer {layer.name} is not a SemanticPredictionGuidance layer.")
    return layer


def attention_matrix(model, stage: int = 1) -> np.ndarray:
    """The ``C x D`` weight matrix of the attention ``1x1`` conv (Fig 4, top right).

    Args:
        model: An SPGNet with ``guidance="spg"``, or a ``SemanticPredictionGuidance`` layer.
        stage: The SPG module after this stage.
    """
    layer = _spg_layer(model, stage)
    kernel = np.asarray(layer.attention_conv.kernel)  # (1, 1, C, D)
    return kernel.reshape(kernel.shape[-2], kernel.shape[-1]).astype(np.float32)


def top_attention_channels(weights: np.ndarray, class_index: int, top_k: int = TOP_K) -> np.ndarray:
    """Indices of the ``top_k`` largest weights of row ``class_index``, largest first.

    Ties are broken by the lower channel index (stable sort).
    """
    weights = np.asarray(weights)
    if not 0 <= class_index < weights.shape[0]:
        raise InvalidInputError(f"class index {class_index} out of range [0, {weights.shape[0]}).")
    if not 1 <= top_k <= weights.shape[1]:
        raise InvalidInputError(f"top_k must be in [1, {weights.shape[1]}] (the number of channels D), got {top_k}.")
    order = np.argsort(-weights[class_index], kind="stable")
    return order[:top_k]


def _class_indices(classes, class_names, num_classes) -> list[int]:
    indices = []
    for entry in classes:
        if isinstance(entry, str):
            if class_names is None:
                raise InvalidInputError(f"Class {entry!r} given by name but the class names are unknown; use indices.")
            if entry not in list(class_names):
                raise InvalidInputError(f"Unknown class name {entry!r}; known: {list(class_names)}.")
            indices.append(list(class_names).index(entry))
        else:
            index = int(entry)
            if not 0 <= index < num_classes:
                raise InvalidInputError(f"class index {index} out of range [0, {num_classes}).")
            indices.append(index)
    if not indices:
        raise InvalidInputError("No classes given.")
    return indices


def guided_attention_maps(
    model,
    image,
    classes: Sequence[int | str],
    stage: int = 1,
    top_k: int = TOP_K,
    class_names: Sequence[str] | None = None,
    normalization: str = "minmax",
) -> np.ndarray:
    """Guided-attention heat maps of an SPGNet for some classes (Sec 4.5 / Fig 4).

    Steps, for an image ``H x W``:

    1. The RGB 0-255 image is padded bottom/right with the mean colour to a multiple of
       32 and run (through the model's own normalisation) up to the SPG module's input ``x_d`` (a sub-model ``model.input -> spg.input``);
       ``m = spg.guided_attention(x_d)``, shape ``Hp/4 x Wp/4 x D``.
    2. For class ``c``: ``idx = top_attention_channels(W, c, top_k)`` with ``W`` the
       ``C x D`` :func:`attention_matrix`; ``a = sqrt(sum_{j in idx} m[..., j]**2)``.
    3. ``a`` is upsampled bilinearly (half-pixel centres) by 4 to the padded size and
       cropped to ``H x W``.
    4. Normalisation to ``[0, 1]``: ``"minmax"`` (default, as the paper's figures)
       rescales each map to ``(a - min) / (max - min)`` over the image (a constant map
       becomes 0); ``"absolute"`` divides by ``sqrt(top_k)``, the largest possible value
       of a sigmoid attention, so maps of different classes/images are comparable.

    Args:
        model: SPGNet with ``guidance="spg"``.
        image: ``[H, W, 3]`` RGB image in [0, 255] (uint8 or float).
        classes: Class indices or names (names need ``class_names``).
        stage: Which SPG module (after stage ``stage``).
        top_k: Channels per class (paper: 15).
        class_names: Names for resolving ``classes`` given as strings (default: the
            model's own ``class_names``).
        normalization: ``"minmax"`` or ``"absolute"``.

    Returns:
        ``float32 [len(classes), H, W]`` with values in ``[0, 1]``.
    """
    import keras
    import tensorflow as tf

    from spgnet_keras.constants import OUTPUT_STRIDE
    from spgnet_keras.inference import image_batch
    from spgnet_keras.models.spgnet import check_takes_raw_images
    from spgnet_keras.preprocessing import pad_bottom_right

    if normalization not in ("minmax", "absolute"):
        raise InvalidInputError(f"normalization must be 'minmax' or 'absolute', got {normalization!r}.")
    layer = _spg_layer(model, stage)
    check_takes_raw_images(model)  # before the other arguments: no setting makes it usable
    if normalization == "absolute" and layer.excitation != "sigmoid":
        raise InvalidInputError("normalization='absolute' assumes a sigmoid attention (values in (0, 1)).")
    weights = attention_matrix(layer)
    if class_names is None:  # the names a trained SPGNet keeps in its config
        class_names = getattr(model, "class_names", None)
    indices = _class_indices(classes, class_names, weights.shape[0])
    channels = [top_attention_channels(weights, index, top_k) for index in indices]

    batch = image_batch(image)
    if batch.shape[0] != 1:
        raise InvalidInputError("guided_attention_maps takes one image [H, W, 3].")
    height, width = batch.shape[1:3]
    padded_h = -(-height // OUTPUT_STRIDE) * OUTPUT_STRIDE
    padded_w = -(-width // OUTPUT_STRIDE) * OUTPUT_STRIDE
    batch = pad_bottom_right(batch, padded_h, padded_w)
    feature_model = keras.Model(model.input, layer.input)
    features = feature_model(batch, training=False)
    attention = np.asarray(tf.cast(layer.guided_attention(features), tf.float32))[0]  # (h, w, D)

    norms = np.stack([np.sqrt(np.sum(np.square(attention[..., idx]), axis=-1)) for idx in channels], -1)
    upsampled = np.asarray(tf.image.resize(norms[None], (padded_h, padded_w), method="bilinear"))[0]
    maps = np.moveaxis(upsampled[:height, :width], -1, 0).astype(np.float64)
    if normalization == "absolute":
        maps = maps / math.sqrt(top_k)
    else:
        low = maps.min(axis=(1, 2), keepdims=True)
        span = maps.max(axis=(1, 2), keepdims=True) - low
        maps = np.where(span > 0, (maps - low) / np.where(span > 0, span, 1.0), 0.0)
    return np.clip(maps, 0.0, 1.0).astype(np.float32)


def attention_figure(
    images,
    maps,
    titles: Sequence[str],
    predictions=None,
    palette=None,
    alpha: float = 0.5,
    cmap: str = "jet",
    panel_width: float = 3.2,
) -> Figure:
    """Fig 5/6-style figure: each row shows an image, optionally its prediction, and one
    heat map per class (``cmap`` from blue = 0 to red = 1) blended over the image.

    Args:
        images: One ``uint8 [H, W, 3]`` image or a list of them (one row each).
        maps: ``[K, H, W]`` maps in ``[0, 1]`` (from :func:`guided_attention_maps`) or a
            list of them, one per image.
        titles: ``K`` class names for the heat-map columns.
        predictions: Optional class map(s) ``[H, W]`` shown colourised after the image.
        palette: Palette for the predictions.
        alpha: Heat-map opacity over the image (1 = heat map only).
        cmap: Matplotlib colour map.
        panel_width: Width of one panel in inches.
    """
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images, maps = [images], [maps]
        predictions = None if predictions is None else [predictions]
    images, maps = list(images), [np.asarray(m) for m in maps]
    if len(images) != len(maps):
        raise InvalidInputError(f"{len(images)} images but {len(maps)} sets of maps.")
    num_maps = maps[0].shape[0]
    if len(titles) != num_maps or any(m.shape[0] != num_maps for m in maps):
        raise InvalidInputError(f"Need one title per map: {len(titles)} titles, {num_maps} maps.")
    extra = 1 if predictions is not None else 0
    columns = 1 + extra + num_maps
    height, width = np.asarray(images[0]).shape[:2]
    figure = new_figure((panel_width * columns, panel_width * height / width * len(images) + 0.6))
    axes = figure.subplots(len(images), columns, squeeze=False)
    mappable = None
    for row, (image, row_maps) in enumerate(zip(images, maps)):
        image = np.asarray(image)
        axes[row, 0].imshow(image)
        axes[row, 0].set_title("image" if row == 0 else "")
        if predictions is not None:
            prediction = np.asarray(predictions[row])
            colours = colorize(prediction, resolve_palette(palette, int(prediction.max()) + 1))
            axes[row, 1].imshow(colours)
            axes[row, 1].set_title("prediction" if row == 0 else "")
        for column, (heat, title) in enumerate(zip(row_maps, titles)):
            axis = axes[row, 1 + extra + column]
            axis.imshow(image)
            mappable = axis.imshow(heat, cmap=cmap, vmin=0.0, vmax=1.0, alpha=alpha)
            axis.set_title(title if row == 0 else "")
    for axis in axes.flat:
        axis.set_axis_off()
    if mappable is not None:
        figure.colorbar(mappable, ax=list(axes.flat), fraction=0.015, pad=0.01)
    return figure


# --------------------------------------------------------------------------------------
# Confusion matrix and training curves
# --------------------------------------------------------------------------------------


def plot_confusion_matrix(
    confusion, class_names: Sequence[str] | None = None, normalize: bool = True, annotate: bool | None = None
) -> Figure:
    """Confusion-matrix image (rows = ground truth, columns = prediction).

    Args:
        confusion: ``(C, C)`` counts.
        class_names: Tick labels (default ``0..C-1``).
        normalize: Divide each row by its total (per-class recall; empty rows stay 0).
        annotate: Write the values in the cells (default: when ``C <= 20``).
    """
    confusion = np.asarray(confusion, np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise InvalidInputError(f"Confusion matrix must be square, got shape {confusion.shape}.")
    size = confusion.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(size)]
    if len(names) != size:
        raise InvalidInputError(f"{len(names)} class names for a {size}x{size} confusion matrix.")
    values = confusion
    if normalize:
        totals = confusion.sum(axis=1, keepdims=True)
        values = np.divide(confusion, totals, out=np.zeros_like(confusion), where=totals > 0)
    annotate = size <= 20 if annotate is None else annotate
    side = max(4.0, 0.45 * size + 2.0)
    figure = new_figure((side + 1.0, side))
    axis = figure.subplots()
    image = axis.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    axis.set_xticks(range(size), names, rotation=90)
    axis.set_yticks(range(size), names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("ground truth")
    axis.set_title("confusion matrix" + (" (row-normalised)" if normalize else ""))
    if annotate:
        threshold = values.max() / 2 if values.size else 0
        for row in range(size):
            for column in range(size):
                text = f"{values[row, column]:.2f}" if normalize else f"{int(values[row, column])}"
                axis.text(column, row, text, ha="center", va="center", fontsize=7,
                          color="white" if values[row, column] > threshold else "black")
    figure.tight_layout()
    return figure


def read_csv_log(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a ``keras.callbacks.CSVLogger`` file into ``{column: float array}``.

    Raises:
        FileNotFoundError: Missing file.
        ValueError: No ``epoch`` column or no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Training log not found: {path}")
    with path.open(newline="") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        delimiter = ";" if sample.count(";") > sample.count(",") else ","
        rows = list(csv.DictReader(handle, delimiter=delimiter))
    if not rows or "epoch" not in rows[0]:
        raise InvalidInputError(f"{path} is not a CSVLogger log (needs an 'epoch' column and at least one row).")

    def number(text):
        try:
            return float(text)
        except (TypeError, ValueError):
            return math.nan

    return {column: np.array([number(row.get(column)) for row in rows]) for column in rows[0] if column}


def plot_training_curves(path_or_log, metrics: Sequence[str] | None = None) -> Figure:
    """Training curves from a CSVLogger file: one panel per metric, ``x`` and ``val_x``.

    Args:
        path_or_log: CSV path or the dict of :func:`read_csv_log`.
        metrics: Base metric names to plot (default: every column except ``epoch`` and
            ``val_*``; a learning-rate column gets its own log-scale panel).
    """
    log = path_or_log if isinstance(path_or_log, dict) else read_csv_log(path_or_log)
    epochs = log["epoch"] + 1
    bases = [c for c in log if c != "epoch" and not c.startswith("val_")]
    bases += [c[4:] for c in log if c.startswith("val_") and c[4:] not in bases]
    if metrics is not None:
        unknown = [m for m in metrics if m not in bases]
        if unknown:
            raise InvalidInputError(f"Metrics {unknown} not in the log; available: {bases}.")
        bases = list(metrics)
    if not bases:
        raise InvalidInputError("The log has no metric columns.")
    columns = min(3, len(bases))
    rows = -(-len(bases) // columns)
    figure = new_figure((4.5 * columns, 3.2 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis, base in zip(axes.flat, bases):
        for name, style in ((base, "-"), (f"val_{base}", "--")):
            if name in log:
                axis.plot(epochs, log[name], style, marker="o", markersize=3, label=name)
        if base in ("lr", "learning_rate"):
            axis.set_yscale("log")
        axis.set_title(base)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    for axis in list(axes.flat)[len(bases):]:
        axis.set_axis_off()
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Saves a figure (format from the suffix), creating parent folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
