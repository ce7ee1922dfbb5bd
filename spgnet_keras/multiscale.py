"""Test-time settings and multi-scale + flip averaging, shared by `spgnet_keras.inference`
(eager) and the exported SavedModel (graph).

* `TestTimeOptions`: the test-time options (`scales`, `flip`, `window`, `stride`,
  `batch_size`) of `predict_logits`, `predict`, `predict_probabilities`, `evaluate` and
  (`scales`, `flip`) `export_saved_model`, validated once.
* `pad_to_stride` / `padded_side`: the package's one padding rule (bottom/right, ImageNet
  mean colour, to a multiple of `OUTPUT_STRIDE`), applied only for a model that does not
  pad itself (`pads_itself`): an `SPGNet` pads its normalised input with zeros, which is
  the same (its `PadToMultiple` layer).
* `multi_scale_probabilities`: the paper's multi-scale + flip test (Sec 4.2).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from spgnet_keras import preprocessing
from spgnet_keras.constants import MAX_INFERENCE_BATCH, MAX_WINDOW_SIDE, OUTPUT_STRIDE
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.scales import check_scales, scaled_size

# === Argument checks ===


def check_batch_size(batch_size) -> int:
    """Returns `batch_size` as an int; `InvalidInputError` unless it is an integer in
    [1, `MAX_INFERENCE_BATCH`]."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InvalidInputError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    if batch_size > MAX_INFERENCE_BATCH:
        raise InvalidInputError(
            f"`batch_size` must be at most {MAX_INFERENCE_BATCH} (spgnet_keras.constants.MAX_INFERENCE_BATCH), "
            f"got {batch_size}."
        )
    return int(batch_size)


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        height, width = value
    except (TypeError, ValueError):
        raise InvalidInputError(f"`{name}` must be an int or a (height, width) pair, got {value!r}.") from None
    for size in (height, width):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise InvalidInputError(f"`{name}` sizes must be positive integers, got {value!r}.")
    return int(height), int(width)


def check_window(window, stride) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """Validates a sliding window and its step; returns them as `(height, width)` pairs.

    Args:
        window: int. Or a `(height, width)` pair, multiples of `OUTPUT_STRIDE`, or None.
        stride: int. Or a pair, at most `window`; None: two thirds of the window.

    Returns:
        `(window, stride)`, both None without a window.
    """
    if window is None:
        if stride is not None:
            raise InvalidInputError("`stride` needs a `window`.")
        return None, None
    window = _pair(window, "window")
    if any(size % OUTPUT_STRIDE for size in window):
        raise InvalidInputError(f"`window` sizes must be multiples of {OUTPUT_STRIDE}, got {window}.")
    if max(window) > MAX_WINDOW_SIDE:
        raise InvalidInputError(
            f"`window` sizes must be at most {MAX_WINDOW_SIDE} (spgnet_keras.constants.MAX_WINDOW_SIDE), "
            f"got {window}."
        )
    if stride is None:
        stride = tuple(max(1, (2 * size) // 3) for size in window)
    stride = _pair(stride, "stride")
    if any(s > w for s, w in zip(stride, window)):
        raise InvalidInputError(f"`stride` {stride} must not exceed `window` {window} (pixels would be skipped).")
    return window, stride


# === The test-time options ===


@dataclasses.dataclass(frozen=True)
class TestTimeOptions:
    """How a full image is predicted: scales, flip, sliding window, batch size.

    Validated when built (`check_scales`, `check_window`, `check_batch_size`), so a bad
    setting fails before any image is read. Taken as `test_time=` by
    `spgnet_keras.inference.predict_logits` (and `predict`, `predict_probabilities`),
    `spgnet_keras.evaluation.evaluate` and (`scales`, `flip`) `export_saved_model`.

    Args:
        scales: tuple of float. Test scales; `spgnet_keras.inference.PAPER_SCALES` for the
            paper's multi-scale test.
        flip: bool. Also run the horizontally mirrored image and average.
        window: int or (int, int). Sliding-window size (multiples of 32), or None to run
            every scaled image whole.
        stride: int or (int, int). Window step, at most `window`; None: two thirds of it.
        batch_size: int. Most images (windows, flips) per model call.

    Example:

    ```python
    options = TestTimeOptions(scales=(0.75, 1.0, 1.25), flip=True)
    classes = spgnet_keras.inference.predict(model, image, test_time=options)
    ```
    """

    __test__ = False  # not a pytest test class

    scales: tuple = (1.0,)
    flip: bool = False
    window: tuple | None = None
    stride: tuple | None = None
    batch_size: int = 4

    def __post_init__(self):
        window, stride = check_window(self.window, self.stride)
        object.__setattr__(self, "scales", check_scales(self.scales))
        object.__setattr__(self, "flip", bool(self.flip))
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "stride", stride)
        object.__setattr__(self, "batch_size", check_batch_size(self.batch_size))

    @property
    def averages(self) -> bool:
        """True when more than one pass is averaged (several scales, another scale, or flip)."""
        return self.scales != (1.0,) or self.flip


def test_time_options(test_time: TestTimeOptions | None = None, **legacy) -> TestTimeOptions:
    """The `TestTimeOptions` of a function taking `test_time=` or the separate keywords.

    Args:
        test_time: TestTimeOptions. Or None.
        **legacy: `scales`, `flip`, `window`, `stride`, `batch_size` as given (None: not given).

    Returns:
        `test_time`, or one built from the keywords given (defaults for the others).

    Raises:
        InvalidInputError: Both `test_time` and a separate keyword, or a bad setting.
    """
    given = {name: value for name, value in legacy.items() if value is not None}
    if test_time is None:
        return TestTimeOptions(**given)
    if not isinstance(test_time, TestTimeOptions):
        raise InvalidInputError(f"`test_time` must be a TestTimeOptions, got {type(test_time).__name__}.")
    if given:
        raise InvalidInputError(
            f"Give the test-time settings either as test_time=TestTimeOptions(...) or as keywords, not both "
            f"(got test_time and {', '.join(sorted(given))})."
        )
    return test_time


# === The padding rule ===


def padded_side(size):
    """`size` rounded up to a multiple of `OUTPUT_STRIDE` (Python int or integer tensor)."""
    return -(-size // OUTPUT_STRIDE) * OUTPUT_STRIDE


def pad_to_stride(images):
    """Pads `[..., H, W, 3]` RGB 0-255 images at the bottom/right with the ImageNet mean colour
    to sides that are multiples of `OUTPUT_STRIDE` (32): what an `SPGNet` does itself."""
    shape = tf.shape(images)
    rank = len(images.shape)
    return preprocessing.pad_bottom_right(images, padded_side(shape[rank - 3]), padded_side(shape[rank - 2]))


def pads_itself(model) -> bool:
    """True for a model that pads its input to a multiple of `OUTPUT_STRIDE` itself (an
    `SPGNet` taking RGB 0-255: its `PadToMultiple` layer zero-pads the normalised image,
    i.e. pads with the mean colour), so that `pad_to_stride` before it changes nothing."""
    from spgnet_keras.layers.resize import PadToMultiple

    if getattr(model, "include_preprocessing", True) is False:
        return False
    layers = getattr(model, "layers", ())
    return any(isinstance(layer, PadToMultiple) and OUTPUT_STRIDE % layer.multiple == 0 for layer in layers)


# === Multi-scale + flip ===


def multi_scale_probabilities(logits_fn, images, scales=(1.0,), flip=False):
    """Softmax probabilities averaged over `scales` and (with `flip`) mirrored images.

    Each pass resizes the images (bilinear, `round(side * scale)` as in training), runs
    `logits_fn`, mirrors a flipped pass back, takes the softmax, and resizes the
    probabilities to the input size (bilinear: a convex combination, so they stay
    distributions); the passes are averaged with equal weight.

    Args:
        logits_fn: callable. Maps float32 RGB 0-255 images `[B, h, w, 3]` to float32
            logits (or log-probabilities) `[B, h, w, C]` at the same size.
        images: tensor. float32 RGB 0-255 `[B, H, W, 3]`.
        scales: tuple of float. The scales.
        flip: bool. Also average the horizontally mirrored images.

    Returns:
        float32 `[B, H, W, C]` probabilities.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    size = tf.shape(images)[1:3]
    total, passes = None, 0
    for scale in scales:
        scaled = images if scale == 1.0 else tf.image.resize(images, scaled_size(size, scale), method="bilinear")
        for mirrored in (False, True) if flip else (False,):
            logits = logits_fn(tf.reverse(scaled, axis=[2]) if mirrored else scaled)
            probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
            if mirrored:
                probabilities = tf.reverse(probabilities, axis=[2])
            if scale != 1.0:
                probabilities = tf.image.resize(probabilities, size, method="bilinear")
            total = probabilities if total is None else total + probabilities
            passes += 1
    return total if passes == 1 else total / float(passes)
