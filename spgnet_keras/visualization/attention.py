"""Guided attention (paper Sec 4.5, Fig 4).

The SPG module between stage `s` and `s+1` computes the guided attention
`m = sigmoid(conv1x1(x_l))` (`H/4 x W/4 x D`) from the per-class logits `x_l` with a `1x1`
convolution whose kernel is a `C x D` matrix. For class `c` the paper takes row `c` of that
matrix, selects the `top_k = 15` channels with the largest weights (signed values, not
magnitudes) and shows the `l2` norm of `m` over those channels, normalised to `[0, 1]`
(0 = blue, 1 = red). See `guided_attention_maps` for the exact steps.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from spgnet_keras.errors import InvalidInputError
from spgnet_keras.visualization.colors import colorize, new_figure, resolve_palette

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["TOP_K", "attention_figure", "attention_matrix", "guided_attention_maps", "top_attention_channels"]

TOP_K = 15
"""Channels per class in the paper's guided-attention visualisation (Sec 4.5)."""


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
    """The `C x D` weight matrix of the attention `1x1` conv (Fig 4, top right).

    Args:
        model: An SPGNet with `guidance="spg"`, or a `SemanticPredictionGuidance` layer.
        stage: The SPG module after this stage.
    """
    layer = _spg_layer(model, stage)
    kernel = np.asarray(layer.attention_conv.kernel)  # (1, 1, C, D)
    return kernel.reshape(kernel.shape[-2], kernel.shape[-1]).astype(np.float32)


def top_attention_channels(weights: np.ndarray, class_index: int, top_k: int = TOP_K) -> np.ndarray:
    """Indices of the `top_k` largest weights of row `class_index`, largest first.

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

    Steps, for an image `H x W`:

    1. The RGB 0-255 image is padded bottom/right with the mean colour to a multiple of
       32 and run (through the model's own normalisation) up to the SPG module's input `x_d` (a sub-model `model.input -> spg.input`);
       `m = spg.guided_attention(x_d)`, shape `Hp/4 x Wp/4 x D`.
    2. For class `c`: `idx = top_attention_channels(W, c, top_k)` with `W` the
       `C x D` `attention_matrix`; `a = sqrt(sum_{j in idx} m[..., j]**2)`.
    3. `a` is upsampled bilinearly (half-pixel centres) by 4 to the padded size and
       cropped to `H x W`.
    4. Normalisation to `[0, 1]`: `"minmax"` (default, as the paper's figures)
       rescales each map to `(a - min) / (max - min)` over the image (a constant map
       becomes 0); `"absolute"` divides by `sqrt(top_k)`, the largest possible value
       of a sigmoid attention, so maps of different classes/images are comparable.

    Args:
        model: SPGNet with `guidance="spg"`.
        image: `[H, W, 3]` RGB image in [0, 255] (uint8 or float).
        classes: Class indices or names (names need `class_names`).
        stage: Which SPG module (after stage `stage`).
        top_k: Channels per class (paper: 15).
        class_names: Names for resolving `classes` given as strings (default: the
            model's own `class_names`).
        normalization: `"minmax"` or `"absolute"`.

    Returns:
        `float32 [len(classes), H, W]` with values in `[0, 1]`.
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
    heat map per class (`cmap` from blue = 0 to red = 1) blended over the image.

    Args:
        images: One `uint8 [H, W, 3]` image or a list of them (one row each).
        maps: `[K, H, W]` maps in `[0, 1]` (from `guided_attention_maps`) or a
            list of them, one per image.
        titles: `K` class names for the heat-map columns.
        predictions: Optional class map(s) `[H, W]` shown colourised after the image.
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

