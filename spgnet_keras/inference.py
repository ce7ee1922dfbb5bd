"""Full-image inference: padding, multi-scale, flip and sliding-window test-time evaluation.

Input convention (every function here that takes an image):

* An image is ``[H, W, 3]`` RGB in [0, 255] (``uint8`` as returned by :func:`load_image`,
  or float, as ``spgnet_keras.data.make_dataset`` yields), or a batch ``[N, H, W, 3]`` of
  images of one size: the same input ``model.predict`` takes, since SPGNet normalises its
  own input (:mod:`spgnet_keras.preprocessing`).

How one prediction is made (:func:`predict_logits`):

1. For each scale ``s``: the image is resized bilinearly (half-pixel centres,
   no anti-aliasing, as in the training augmentation) to ``round(H*s) x round(W*s)``;
   scale 1.0 is not resized.
2. It is padded at the bottom/right to a multiple of 32 (``OUTPUT_STRIDE``) with the
   ImageNet mean colour (0 after the model's normalisation), run through the model, and the logits are
   cropped back to the scaled size. With ``flip=True`` the mirrored image goes through the
   same steps (padded at *its* bottom/right) in the same batch, and its logits are
   mirrored back.
3. With ``window=(h, w)`` and a scaled image larger than the window in some dimension, the
   scaled image is covered by overlapping ``h x w`` windows (steps ``stride``; the last
   window is aligned with the bottom/right border, so windows never need padding; a
   dimension smaller than the window is padded to a multiple of 32 instead). The windows
   (of the image and of its mirror) are run in batches of ``batch_size`` and the softmax
   probabilities are averaged where windows overlap. A window sees less context than the
   full image: convolutions zero-pad at the window border and SPGNet's global average
   pooling pools over the window only, so for SPGNet windowed results differ from the
   full-image pass; for a model with a one-pixel receptive field (1x1 convolutions) they
   are identical.
4. Each pass's logits (for windows: log of the overlap-averaged probabilities, which are
   logits of those probabilities) are resized bilinearly to ``H x W``, turned into
   probabilities with a softmax, and the probabilities of all scales and flips are averaged
   (the paper's multi-scale test, Sec 4.3: :data:`PAPER_SCALES`).

The result is returned as the log of the averaged probabilities, computed in log space
(``logaddexp``), so it never contains ``-inf``: ``softmax(result)`` is the averaged
probability map and ``argmax(result)`` the predicted class. For a single pass (one scale,
no flip, no window) the result is the model's logits minus their per-pixel log-sum-exp.
"""

from __future__ import annotations

import contextlib
import math
import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from spgnet_keras import preprocessing
from spgnet_keras.constants import MAX_IMAGE_PIXELS, OUTPUT_STRIDE
from spgnet_keras.models.spgnet import check_takes_raw_images

__all__ = [
    "PAPER_SCALES",
    "IMAGE_EXTENSIONS",
    "load_image",
    "check_image_file",
    "list_images",
    "image_batch",
    "predict_logits",
    "predict_probabilities",
    "predict",
    "check_scales",
    "check_window",
    "load_model",
    "scaled_size",
    "sliding_windows",
]

PAPER_SCALES: tuple[float, ...] = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
"""Test scales of the paper's multi-scale inference (Sec 4.3 / Table 9 text)."""

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
"""File suffixes :func:`list_images` picks up from a folder (any case)."""


# --------------------------------------------------------------------------------------
# Image loading
# --------------------------------------------------------------------------------------


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file into a ``uint8`` RGB array ``[H, W, 3]``.

    Conversions (PIL): grayscale (``L``, ``1``, ``I;16``, ``I``, ``F``) is replicated to
    three channels; 16-bit ``I;16`` is scaled by 255/65535, and 32-bit ``I``/``F`` the same
    way if a value exceeds 255 (else they are taken as 0-255); palette images are expanded to their
    colours; an alpha channel (``RGBA``, ``LA``, palette transparency) is **dropped**, not
    composited, i.e. transparent pixels keep their stored colour; CMYK/YCbCr are converted
    to RGB. EXIF orientation is not applied (the pixels are used as stored, like the
    training pipeline's decoder).

    Args:
        path: Image file (any format PIL reads: PNG, JPEG, BMP, GIF, TIFF, WebP, ...).

    Returns:
        ``np.uint8`` array ``[H, W, 3]``.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file is not a readable image (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image not found: {path}")
    with _opened_image(path) as image:
        image.load()
        return _pil_to_rgb_array(image)


@contextlib.contextmanager
def _opened_image(path):
    """PIL image of `path`, its declared size checked before decoding; clear errors."""
    try:
        with Image.open(path) as image:
            check_pixel_count(image.size, path)
            yield image
    except Image.DecompressionBombError as error:  # PIL's own, larger limit fired first
        raise ValueError(f"Image {path} declares more pixels than the limit of {MAX_IMAGE_PIXELS} ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"Not a readable image file: {path} ({error})") from None


def check_pixel_count(size, path, max_pixels=MAX_IMAGE_PIXELS):
    """ValueError when an image's declared width x height exceeds `max_pixels`."""
    width, height = size
    if width * height > max_pixels:
        raise ValueError(
            f"Image {path} declares {width}x{height} = {width * height} pixels, more than the limit of "
            f"{max_pixels} (spgnet_keras.constants.MAX_IMAGE_PIXELS); resize it first."
        )


def _pil_to_rgb_array(image: Image.Image) -> np.ndarray:
    """PIL image -> uint8 RGB array with the conversions documented in :func:`load_image`."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if mode in ("LA", "La", "PA"):
        image = image.convert("L") if mode != "PA" else image.convert("RGB")
    array = np.asarray(image.convert("RGB") if image.mode not in ("RGB", "RGBA", "L", "1") else image)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return np.ascontiguousarray(array[..., :3]).astype(np.uint8)


def check_image_file(path: str | os.PathLike) -> None:
    """Raises the errors of :func:`load_image` from the file header alone (cheap)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image not found: {path}")
    with _opened_image(path):
        pass


def list_images(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Expands files and folders into a sorted list of image files.

    Folders contribute their files (not recursive) with one of :data:`IMAGE_EXTENSIONS`.

    Raises:
        FileNotFoundError: A path does not exist.
        ValueError: A folder holds no image file, or nothing at all was given.
    """
    if not inputs:
        raise ValueError("No input images given.")
    files: list[Path] = []
    for entry in inputs:
        entry = Path(entry)
        if entry.is_dir():
            found = sorted(p for p in entry.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise ValueError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {entry}")
            files.extend(found)
        elif entry.is_file():
            files.append(entry)
        else:
            raise FileNotFoundError(f"Input not found: {entry}")
    return files


def load_model(path: str | os.PathLike):
    """Loads a saved ``.keras`` model (SPGNet layers registered, not compiled).

    Raises:
        FileNotFoundError: Missing file.
        ValueError: Not a ``.keras`` / ``.h5`` file, or Keras cannot read it.
    """
    import keras

    import spgnet_keras  # noqa: F401  (registers the custom layers for deserialisation)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Model file not found: {path}")
    if path.suffix.lower() not in (".keras", ".h5"):
        raise ValueError(f"Model must be a .keras (or legacy .h5) file saved with model.save(), got {path}.")
    try:
        return keras.saving.load_model(path, compile=False)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise ValueError(f"Could not load model {path}: {error}") from None


# --------------------------------------------------------------------------------------
# Input and argument checks
# --------------------------------------------------------------------------------------


def image_batch(image) -> np.ndarray:
    """A float32 batch ``[N, H, W, 3]`` of RGB 0-255 images from ``[H, W, 3]`` or ``[N, H, W, 3]``.

    Raises:
        ValueError: Not an RGB image or batch, an empty image, a non-numeric dtype, or
            NaN/infinite pixels.
    """
    array = np.asarray(image)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(
            f"Expected an RGB image [H, W, 3] or a batch [N, H, W, 3], got shape {np.shape(image)}; "
            "use load_image() to convert grayscale/RGBA files."
        )
    if array.shape[1] < 1 or array.shape[2] < 1 or array.shape[0] < 1:
        raise ValueError(f"Empty image of shape {np.shape(image)}.")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"Unsupported image dtype {array.dtype}; expected RGB values in [0, 255].")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError("The image holds NaN or infinite values.")
    return array


def check_scales(scales) -> tuple[float, ...]:
    """Returns ``scales`` as a tuple of floats; ValueError unless all are finite and > 0."""
    if isinstance(scales, (int, float)):
        scales = (scales,)
    scales = tuple(scales)
    if not scales:
        raise ValueError("`scales` must contain at least one scale.")
    for scale in scales:
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
            raise ValueError(f"`scales` must be positive numbers, got {scale!r}.")
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"`scales` must be positive numbers, got {scale!r}.")
    return tuple(float(s) for s in scales)


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        height, width = value
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be an int or a (height, width) pair, got {value!r}.") from None
    for size in (height, width):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"`{name}` sizes must be positive integers, got {value!r}.")
    return int(height), int(width)


def check_window(window, stride) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """Validates window/stride; returns them as pairs (stride defaults to 2/3 of window)."""
    if window is None:
        if stride is not None:
            raise ValueError("`stride` needs a `window`.")
        return None, None
    window = _pair(window, "window")
    if any(size % OUTPUT_STRIDE for size in window):
        raise ValueError(f"`window` sizes must be multiples of {OUTPUT_STRIDE}, got {window}.")
    if stride is None:
        stride = tuple(max(1, (2 * size) // 3) for size in window)
    stride = _pair(stride, "stride")
    if any(s > w for s, w in zip(stride, window)):
        raise ValueError(f"`stride` {stride} must not exceed `window` {window} (pixels would be skipped).")
    return window, stride


def _round_up(size: int, multiple: int = OUTPUT_STRIDE) -> int:
    return -(-size // multiple) * multiple


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(round(H*s), round(W*s))``, at least 1 pixel (same rounding as training)."""
    if scale == 1.0:
        return height, width
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def sliding_windows(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows covering ``[0, size)`` along one axis.

    Windows start at ``0, stride, 2*stride, ...``; the last one is aligned with the end
    (``size - window``) so that every window lies inside the image. If ``size <= window``
    there is one window at 0 (the image is padded instead).
    """
    if size <= window:
        return [0]
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


# --------------------------------------------------------------------------------------
# Model runs
# --------------------------------------------------------------------------------------


def _select_output(outputs, output: str):
    if isinstance(outputs, dict):
        if output not in outputs:
            raise ValueError(f"Model has no output {output!r}; outputs are {sorted(outputs)}.")
        return outputs[output]
    if isinstance(outputs, (list, tuple)):
        raise ValueError("Model returns a list; give it a dict output or a single tensor.")
    return outputs


def _run_model(model, batch: np.ndarray, output: str, batch_size: int) -> np.ndarray:
    """Runs ``model`` on ``batch`` in chunks of ``batch_size``; returns float32 logits."""
    results = []
    for start in range(0, batch.shape[0], batch_size):
        chunk = tf.convert_to_tensor(batch[start : start + batch_size])
        logits = _select_output(model(chunk, training=False), output)
        results.append(np.asarray(tf.cast(logits, tf.float32)))
    logits = np.concatenate(results, axis=0)
    if logits.ndim != 4 or logits.shape[1:3] != batch.shape[1:3]:
        raise ValueError(
            f"Model output {output!r} has shape {logits.shape}; expected logits at the input resolution "
            f"{batch.shape[1:3]}."
        )
    return logits


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    return np.asarray(tf.nn.log_softmax(logits, axis=-1))


def _pad(batch: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pads a batch at the bottom/right with the mean colour up to ``height x width``."""
    if (height, width) == batch.shape[1:3]:
        return batch
    return np.asarray(preprocessing.pad_bottom_right(batch, height, width))


def _scaled_log_probs(model, image, flip, window, stride, output, batch_size) -> list[np.ndarray]:
    """Log-probabilities ``[N, h, w, C]`` of one scaled batch, one array per flip.

    The mirrored image (``flip=True``) goes through exactly the same procedure as the
    image (padding at *its* bottom/right, its own window grid) and the result is mirrored
    back. Without a window (or an image no larger than it) each is a padded full-image
    pass; otherwise the overlap-averaged probabilities of sliding windows, in log space.
    """
    count, height, width = image.shape[:3]
    variants = [image, image[:, :, ::-1]] if flip else [image]
    padded_h, padded_w = _round_up(height), _round_up(width)
    if window is None or (height <= window[0] and width <= window[1]):
        batch = np.concatenate([_pad(variant, padded_h, padded_w) for variant in variants], axis=0)
        logits = _run_model(model, batch, output, batch_size)[:, :height, :width]
        parts = [logits[i * count : (i + 1) * count] for i in range(len(variants))]
        return [_log_softmax(part[:, :, ::-1] if mirrored else part) for mirrored, part in enumerate(parts)]

    win_h, win_w = min(window[0], padded_h), min(window[1], padded_w)
    padded = [_pad(variant, max(height, win_h), max(width, win_w)) for variant in variants]
    boxes = [
        (top, left)
        for top in sliding_windows(height, win_h, stride[0])
        for left in sliding_windows(width, win_w, stride[1])
    ]
    counts = np.zeros((padded[0].shape[1], padded[0].shape[2], 1), np.float32)
    for top, left in boxes:
        counts[top : top + win_h, left : left + win_w] += 1
    totals = [None] * len(variants)
    # One item = one window of all N images of one variant (plain or mirrored); items are
    # batched together (batch_size images per model call) and accumulated as they return.
    items = [(box, variant) for box in boxes for variant in range(len(variants))]
    per_call = max(1, batch_size // count)
    for start in range(0, len(items), per_call):
        chunk = items[start : start + per_call]
        crops = [padded[v][:, top : top + win_h, left : left + win_w] for (top, left), v in chunk]
        log_probs = _log_softmax(_run_model(model, np.concatenate(crops, axis=0), output, batch_size))
        for index, ((top, left), v) in enumerate(chunk):
            part = log_probs[index * count : (index + 1) * count]
            if totals[v] is None:
                totals[v] = np.full(padded[v].shape[:3] + (part.shape[-1],), -np.inf, np.float32)
            view = totals[v][:, top : top + win_h, left : left + win_w]
            np.logaddexp(view, part, out=view)
    log_counts = np.log(counts)
    results = [(total - log_counts)[:, :height, :width] for total in totals]
    return [result[:, :, ::-1] if mirrored else result for mirrored, result in enumerate(results)]


def predict_logits(
    model,
    image,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    output: str = "prediction",
    window: int | tuple[int, int] | None = None,
    stride: int | tuple[int, int] | None = None,
    batch_size: int = 4,
) -> np.ndarray:
    """Test-time prediction of a full image of any size (see the module docstring).

    Args:
        model: A Keras model mapping RGB 0-255 images ``[N, H, W, 3]`` (it is given H, W
            multiples of 32) to logits ``[N, H, W, C]`` at the input resolution, or a dict
            of them (an ``SPGNet``).
        image: ``[H, W, 3]`` or ``[N, H, W, 3]`` RGB in [0, 255] (uint8 or float).
        scales: Test scales; :data:`PAPER_SCALES` for the paper's multi-scale test.
        flip: Also run the horizontally mirrored image and average.
        output: Which output of a dict-output model to use ("prediction" = last stage,
            "stage1", ... = earlier stages).
        window: Sliding-window size ``int`` or ``(height, width)``, multiples of 32; None
            runs every scaled image whole.
        stride: Window step ``int`` or ``(height, width)``, at most ``window``; default
            two thirds of the window.
        batch_size: Most images (windows, flips) per model call.

    Returns:
        float32 ``[H, W, C]`` (or ``[N, H, W, C]`` for a batch input): log of the averaged
        softmax probabilities.

    Raises:
        ValueError: Non-positive/empty scales, a bad window or stride, a wrongly shaped
            or non-finite image, a model output that is not per-pixel logits, or an
            SPGNet built to take normalised input.
    """
    scales = check_scales(scales)
    window, stride = check_window(window, stride)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    check_takes_raw_images(model)
    single = np.ndim(image) == 3
    batch = image_batch(image)
    height, width = batch.shape[1:3]

    total = None
    passes = 0
    for scale in scales:
        target = scaled_size(height, width, scale)
        scaled = batch if target == (height, width) else np.asarray(
            tf.image.resize(batch, target, method="bilinear"), np.float32
        )
        for log_probs in _scaled_log_probs(model, scaled, flip, window, stride, output, batch_size):
            if log_probs.shape[1:3] != (height, width):
                log_probs = _log_softmax(np.asarray(tf.image.resize(log_probs, (height, width), method="bilinear")))
            total = log_probs if total is None else np.logaddexp(total, log_probs)
            passes += 1
    result = (total - np.float32(math.log(passes))).astype(np.float32) if passes > 1 else total.astype(np.float32)
    return result[0] if single else result


def predict_probabilities(model, image, **kwargs) -> np.ndarray:
    """Averaged softmax probabilities ``[H, W, C]``; arguments as :func:`predict_logits`."""
    return np.exp(predict_logits(model, image, **kwargs))


def predict(model, image, **kwargs) -> np.ndarray:
    """Predicted class map ``int32 [H, W]`` (or ``[N, H, W]``); arguments as :func:`predict_logits`."""
    return np.argmax(predict_logits(model, image, **kwargs), axis=-1).astype(np.int32)
