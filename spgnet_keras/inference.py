"""Full-image inference: padding, multi-scale, flip and sliding-window test-time evaluation.

Input convention (every function here that takes an image):

* An image is `[H, W, 3]` RGB in [0, 255] (`uint8` as returned by `spgnet_keras.data.load_image`,
  or float, as `spgnet_keras.data.make_dataset` yields), or a batch `[N, H, W, 3]` of
  images of one size: the same input `model.predict` takes, since SPGNet normalises its
  own input (`spgnet_keras.preprocessing`).

How one prediction is made (`predict_logits`):

1. For each scale `s`: the image is resized bilinearly (half-pixel centres,
   no anti-aliasing, as in the training augmentation) to `round(H*s) x round(W*s)`;
   scale 1.0 is not resized.
2. It is run through the model, padded at the bottom/right to a multiple of 32
   (`OUTPUT_STRIDE`) with the ImageNet mean colour (0 after the model's normalisation)
   and the logits cropped back to the scaled size: an `SPGNet` does that itself, any other
   model is given the image padded by `spgnet_keras.multiscale.pad_to_stride` (the one
   padding rule; `pads_itself` tells which). With `flip=True` the mirrored image goes
   through the same steps (padded at *its* bottom/right), and its logits are mirrored back.
3. With `window=(h, w)` and a scaled image larger than the window in some dimension, the
   scaled image is covered by overlapping `h x w` windows (steps `stride`; the last
   window is aligned with the bottom/right border, so windows never need padding; a
   dimension smaller than the window is run whole, padded as in step 2). The windows
   (of the image and of its mirror) are run in batches of `batch_size` and the softmax
   probabilities are averaged where windows overlap. A window sees less context than the
   full image: convolutions zero-pad at the window border and SPGNet's global average
   pooling pools over the window only, so for SPGNet windowed results differ from the
   full-image pass; for a model with a one-pixel receptive field (1x1 convolutions) they
   are identical.
4. Each pass's logits (for windows: log of the overlap-averaged probabilities, which are
   logits of those probabilities) are resized bilinearly to `H x W`, turned into
   probabilities with a softmax, and the probabilities of all scales and flips are averaged
   (the paper's multi-scale test, Sec 4.3: `PAPER_SCALES`).

The result is returned as the log of the averaged probabilities, computed in log space
(`logaddexp`), so it never contains `-inf`: `softmax(result)` is the averaged
probability map and `argmax(result)` the predicted class. For a single pass (one scale,
no flip, no window) the result is the model's logits minus their per-pixel log-sum-exp.

The test-time settings (`scales`, `flip`, `window`, `stride`, `batch_size`) are one
`TestTimeOptions` (`test_time=`), or separate keywords.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from spgnet_keras import preprocessing
from spgnet_keras.constants import (
    MAX_IMAGE_PIXELS,
    MAX_IMAGE_SIDE,
    MAX_WINDOWS_PER_IMAGE,
    PREDICTION,
)
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.models.spgnet import check_takes_raw_images
from spgnet_keras.multiscale import (
    TestTimeOptions,
    check_batch_size,
    check_window,
    multi_scale_probabilities,
    pad_to_stride,
    padded_side,
    pads_itself,
    test_time_options,
)
from spgnet_keras.scales import scaled_size as _scaled_size

__all__ = [
    "PAPER_SCALES",
    "TestTimeOptions",
    "image_batch",
    "predict_logits",
    "predict_probabilities",
    "predict",
    "check_window",
    "check_batch_size",
    "check_workload",
    "load_model",
    "scaled_size",
    "sliding_windows",
]

PAPER_SCALES: tuple[float, ...] = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
"""Test scales of the paper's multi-scale inference (Sec 4.3 / Table 9 text)."""


# --------------------------------------------------------------------------------------
# Model loading
# --------------------------------------------------------------------------------------


def load_model(path: str | os.PathLike):
    """Loads a saved `.keras` model (not compiled, `safe_mode=True`).

    Args:
        path: str or PathLike. The `.keras` file.

    Returns:
        The `keras.Model` (an `SPGNet` for files saved from one).

    Raises:
        FileNotFoundError: Missing file.
        ValueError: Not a `.keras` file, or Keras cannot read it.
    """
    from spgnet_keras.models.checkpoints import read_saved_model

    return read_saved_model(path, "model")


# --------------------------------------------------------------------------------------
# Input and argument checks
# --------------------------------------------------------------------------------------


def image_batch(image) -> np.ndarray:
    """A float32 batch `[N, H, W, 3]` of RGB 0-255 images from `[H, W, 3]` or `[N, H, W, 3]`.

    Args:
        image: array. RGB in [0, 255], any integer or float dtype.

    Returns:
        float32 `[N, H, W, 3]`.

    Raises:
        InvalidInputError: Not an RGB image or batch, an empty image, a non-numeric dtype, or
            NaN/infinite pixels.
    """
    array = np.asarray(image)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise InvalidInputError(
            f"Expected an RGB image [H, W, 3] or a batch [N, H, W, 3], got shape {np.shape(image)}; "
            "use load_image() to convert grayscale/RGBA files."
        )
    if array.shape[1] < 1 or array.shape[2] < 1 or array.shape[0] < 1:
        raise InvalidInputError(f"Empty image of shape {np.shape(image)}.")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InvalidInputError(f"Unsupported image dtype {array.dtype}; expected RGB values in [0, 255].")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise InvalidInputError("The image holds NaN or infinite values.")
    return array


def check_image_size(height: int, width: int, what: str = "The image") -> None:
    """`InvalidInputError` when an image side exceeds `MAX_IMAGE_SIDE` or its area
    `MAX_IMAGE_PIXELS` (`spgnet_keras.constants`).

    Args:
        height: int. Image height.
        width: int. Image width.
        what: str. How the message names the image.
    """
    if max(height, width) > MAX_IMAGE_SIDE or height * width > MAX_IMAGE_PIXELS:
        raise InvalidInputError(
            f"{what} is {height}x{width} = {height * width} pixels; the limits are {MAX_IMAGE_SIDE} pixels a "
            f"side and {MAX_IMAGE_PIXELS} in all (spgnet_keras.constants.MAX_IMAGE_SIDE / MAX_IMAGE_PIXELS)."
        )


def check_workload(height: int, width: int, scales, window, stride) -> None:
    """`InvalidInputError`, before anything is allocated, when an image of `height x width` or
    one of its scaled copies is beyond the image limits, or would need more than
    `MAX_WINDOWS_PER_IMAGE` sliding windows.

    Args:
        height: int. Image height.
        width: int. Image width.
        scales: tuple of float. Checked test scales (`TestTimeOptions.scales`).
        window: (int, int). Checked window, or None.
        stride: (int, int). Checked stride, or None.
    """
    check_image_size(height, width)
    for scale in scales:
        scaled_h, scaled_w = scaled_size(height, width, scale)
        check_image_size(scaled_h, scaled_w, f"At scale {scale:g} the {height}x{width} image")
        if window is None or (scaled_h <= window[0] and scaled_w <= window[1]):
            continue
        win_h, win_w = min(window[0], padded_side(scaled_h)), min(window[1], padded_side(scaled_w))
        count = len(sliding_windows(scaled_h, win_h, stride[0])) * len(sliding_windows(scaled_w, win_w, stride[1]))
        if count > MAX_WINDOWS_PER_IMAGE:
            raise InvalidInputError(
                f"At scale {scale:g} the {height}x{width} image needs {count} windows of {window[0]}x{window[1]} "
                f"with stride {stride[0]}x{stride[1]}, more than the limit of {MAX_WINDOWS_PER_IMAGE} "
                "(spgnet_keras.constants.MAX_WINDOWS_PER_IMAGE); use a larger stride or window."
            )


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """`(round(H*s), round(W*s))`, at least 1 pixel: `spgnet_keras.scales.scaled_size`
    (training's and the test-time augmentation's rounding) on Python ints.

    Args:
        height: int. Image height.
        width: int. Image width.
        scale: float. The scale factor.
    """
    return _scaled_size((height, width), scale)


def sliding_windows(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows covering `[0, size)` along one axis.

    Windows start at `0, stride, 2*stride, ...`; the last one is aligned with the end
    (`size - window`) so that every window lies inside the image. If `size <= window`
    there is one window at 0 (the image is padded instead).

    Args:
        size: int. Length of the axis.
        window: int. Window length.
        stride: int. Step between window starts.

    Returns:
        The start offsets, increasing.
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
            raise InvalidInputError(f"Model has no output {output!r}; outputs are {sorted(outputs)}.")
        return outputs[output]
    if isinstance(outputs, (list, tuple)):
        raise InvalidInputError("Model returns a list; give it a dict output or a single tensor.")
    return outputs


def _run_model(model, batch: np.ndarray, output: str, batch_size: int) -> np.ndarray:
    """Runs `model` on `batch` in chunks of `batch_size`; returns float32 logits."""
    results = []
    for start in range(0, batch.shape[0], batch_size):
        chunk = tf.convert_to_tensor(batch[start : start + batch_size])
        logits = _select_output(model(chunk, training=False), output)
        results.append(np.asarray(tf.cast(logits, tf.float32)))
    logits = np.concatenate(results, axis=0)
    if logits.ndim != 4 or logits.shape[1:3] != batch.shape[1:3]:
        raise InvalidInputError(
            f"Model output {output!r} has shape {logits.shape}; expected logits at the input resolution "
            f"{batch.shape[1:3]}."
        )
    return logits


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    return np.asarray(tf.nn.log_softmax(logits, axis=-1))


def _pad(batch: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pads a batch at the bottom/right with the mean colour up to `height x width`."""
    if (height, width) == batch.shape[1:3]:
        return batch
    return np.asarray(preprocessing.pad_bottom_right(batch, height, width))


def _pass_log_probs(model, image, window, stride, output, batch_size) -> np.ndarray:
    """Log-probabilities `[N, h, w, C]` of one (scaled, maybe mirrored) batch.

    Without a window (or an image no larger than it) a full-image pass, padded by
    `spgnet_keras.multiscale.pad_to_stride` unless the model pads itself (`pads_itself`);
    otherwise the overlap-averaged probabilities of sliding windows, in log space.
    """
    count, height, width = image.shape[:3]
    self_padding = pads_itself(model)
    if window is None or (height <= window[0] and width <= window[1]):
        batch = image if self_padding else np.asarray(pad_to_stride(image))
        return _log_softmax(_run_model(model, batch, output, batch_size)[:, :height, :width])

    def window_side(side, size):  # a side smaller than the window is run whole (padded)
        return min(size, side if self_padding else padded_side(side))

    win_h, win_w = window_side(height, window[0]), window_side(width, window[1])
    padded = _pad(image, max(height, win_h), max(width, win_w))
    boxes = [
        (top, left)
        for top in sliding_windows(height, win_h, stride[0])
        for left in sliding_windows(width, win_w, stride[1])
    ]
    counts = np.zeros((padded.shape[1], padded.shape[2], 1), np.float32)
    for top, left in boxes:
        counts[top : top + win_h, left : left + win_w] += 1
    total = None
    # Windows of all N images are batched together (batch_size images per model call).
    per_call = max(1, batch_size // count)
    for start in range(0, len(boxes), per_call):
        chunk = boxes[start : start + per_call]
        crops = [padded[:, top : top + win_h, left : left + win_w] for top, left in chunk]
        log_probs = _log_softmax(_run_model(model, np.concatenate(crops, axis=0), output, batch_size))
        for index, (top, left) in enumerate(chunk):
            part = log_probs[index * count : (index + 1) * count]
            if total is None:
                total = np.full(padded.shape[:3] + (part.shape[-1],), -np.inf, np.float32)
            view = total[:, top : top + win_h, left : left + win_w]
            np.logaddexp(view, part, out=view)
    return (total - np.log(counts))[:, :height, :width]


def predict_logits(
    model,
    image,
    scales: Sequence[float] | None = None,
    flip: bool | None = None,
    output: str = PREDICTION,
    window: int | tuple[int, int] | None = None,
    stride: int | tuple[int, int] | None = None,
    batch_size: int | None = None,
    *,
    test_time: TestTimeOptions | None = None,
) -> np.ndarray:
    """Test-time prediction of a full image of any size (see the module docstring).

    The test-time settings come as one `TestTimeOptions` (`test_time=`) or as the separate
    keywords `scales`, `flip`, `window`, `stride`, `batch_size` (those not given take
    `TestTimeOptions`' defaults); giving both is an error.

    Args:
        model: keras.Model. Maps RGB 0-255 images `[N, H, W, 3]` to logits `[N, H, W, C]`
            at the input resolution, or a dict of them (an `SPGNet`). A model that does not
            pad itself to a multiple of 32 (`spgnet_keras.multiscale.pads_itself`) is given
            images padded with the mean colour (`pad_to_stride`).
        image: array. `[H, W, 3]` or `[N, H, W, 3]` RGB in [0, 255] (uint8 or float).
        scales: tuple of float. Test scales; `PAPER_SCALES` for the paper's multi-scale test.
        flip: bool. Also run the horizontally mirrored image and average.
        output: str. Which output of a dict-output model to use ("prediction" = last
            stage, "stage1", ... = earlier stages).
        window: int or (int, int). Sliding-window size, multiples of 32; None runs every
            scaled image whole.
        stride: int or (int, int). Window step, at most `window`; default two thirds of
            the window.
        batch_size: int. Most images (windows, flips) per model call (default 4).
        test_time: TestTimeOptions. All of the above test-time settings in one value.

    Returns:
        float32 `[H, W, C]` (or `[N, H, W, C]` for a batch input): log of the averaged
        softmax probabilities (`spgnet_keras.multiscale.multi_scale_probabilities`, which
        the exported SavedModel runs too; floored at the smallest positive float32), or
        for one plain pass its log-softmax.

    Raises:
        InvalidInputError: Non-positive/empty scales, a bad window or stride, a wrongly
            shaped or non-finite image, a model output that is not per-pixel logits, an
            SPGNet built to take normalised input, `test_time` together with a separate
            setting, or a size beyond the limits of `spgnet_keras.constants` (scale,
            window, batch size, image side and pixels, also after scaling, windows per
            image), checked before any work.
    """
    options = test_time_options(test_time, scales=scales, flip=flip, window=window, stride=stride,
                                batch_size=batch_size)
    check_takes_raw_images(model)
    single = np.ndim(image) == 3
    batch = image_batch(image)
    height, width = batch.shape[1:3]
    check_workload(height, width, options.scales, options.window, options.stride)

    def one_pass(images):
        return _pass_log_probs(model, images.numpy(), options.window, options.stride, output, options.batch_size)

    if not options.averages:  # one pass: its exact log-softmax
        result = one_pass(tf.constant(batch))
    else:
        probabilities = multi_scale_probabilities(one_pass, batch, options.scales, options.flip).numpy()
        result = np.log(np.maximum(probabilities, np.finfo(np.float32).tiny))
    return result[0] if single else result


def predict_probabilities(model, image, **kwargs) -> np.ndarray:
    """Averaged softmax probabilities `[H, W, C]`; arguments as `predict_logits`."""
    return np.exp(predict_logits(model, image, **kwargs))


def predict(model, image, **kwargs) -> np.ndarray:
    """Predicted class map `int32 [H, W]` (or `[N, H, W]`); arguments as `predict_logits`
    (e.g. `predict(model, image, test_time=TestTimeOptions(flip=True))`)."""
    return np.argmax(predict_logits(model, image, **kwargs), axis=-1).astype(np.int32)
