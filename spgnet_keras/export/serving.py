"""The serving graph: decoding, validation, padding, test-time augmentation.

Everything here is plain TensorFlow ops (no `tf.py_function`), so the functions trace
into a SavedModel that TF Serving's C++ loader runs without Python. The functions are
traced with `autograph=False` (what `keras.export.ExportArchive` does), so control flow
is written with `tf.cond` / `tf.map_fn` explicitly.

Conventions (documented in examples/serve_with_tf_serving.md):

- Images are RGB in 0-255. Grayscale and gray+alpha images are replicated to RGB; the
  alpha channel of RGBA / gray+alpha images is dropped (not composited). Encoded images
  must be JPEG or PNG (checked from the magic bytes); 16-bit PNGs keep their high byte;
  JPEG EXIF orientation is not applied (pixels as stored).
- The network (which normalises its own 0-255 input) takes the image as it is: an
  `SPGNet` pads it to a multiple of the output stride (32) itself and crops its logits
  back; any other model is given it padded at the bottom/right with the ImageNet mean
  colour (`spgnet_keras.multiscale.pad_to_stride`, the same rule), its logits cropped
  back before any resizing or argmax.
- `classes[b, y, x]` is the argmax over the (averaged) class scores, int32.
  `probabilities` is the softmax (averaged over scales/flips), float32.
- A batch of encoded images of different sizes is processed one image at a time and the
  outputs are padded at the bottom/right to the largest height and width in the batch:
  `classes` with -1 (`PAD_CLASS`), `probabilities` with 0. `image_sizes[b]` gives each
  image's own (height, width) so a client can crop.
- `predict_classes_png` (encoded images in) answers with `classes_png_bytes[b]`, image
  `b`'s class map at its own size as a grayscale PNG (8-bit; 16-bit for more than 256
  classes), and `image_sizes`: TF Serving's REST API base64-encodes outputs whose name ends
  in `_bytes`, so a 1024x2048 answer is a few kB of JSON instead of two million numbers.
"""

import tensorflow as tf

from spgnet_keras.constants import MAX_IMAGE_PIXELS, PREDICTION
from spgnet_keras.multiscale import multi_scale_probabilities, pad_to_stride, pads_itself

# === Public names of the served signatures ===
SIGNATURE_ENCODED = "serving_default"
SIGNATURE_UINT8 = "predict_images"
SIGNATURE_FLOAT = "predict_images_float"
SIGNATURE_PNG = "predict_classes_png"
SIGNATURES = (SIGNATURE_ENCODED, SIGNATURE_UINT8, SIGNATURE_FLOAT, SIGNATURE_PNG)
INPUT_NAME = "images"
OUTPUT_CLASSES = "classes"
# TF Serving's REST API writes a string output whose name ends in "_bytes" as {"b64": ...}.
OUTPUT_CLASSES_PNG = "classes_png_bytes"
OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_IMAGE_SIZES = "image_sizes"
PAD_CLASS = -1

# 4096 x 4096: a 2048x1024 Cityscapes frame is 2.1 Mpx.
DEFAULT_MAX_PIXELS = MAX_IMAGE_PIXELS

# === Error messages (the served graph raises InvalidArgument with these texts) ===
EMPTY_BATCH_MESSAGE = "images is an empty batch: send at least one image."
NOT_AN_IMAGE_MESSAGE = "images holds an element that is not a JPEG or PNG image (bad magic bytes)."
EMPTY_IMAGE_MESSAGE = "images holds an image of zero height or width."
TOO_LARGE_MESSAGE = "images holds an image with more pixels than max_pixels (height, width, max_pixels follow)."
CHANNELS_MESSAGE = "images must have 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels."
NOT_FINITE_MESSAGE = "images holds NaN or infinite values."
ENCODED_RANK_MESSAGE = (
    "images must be a 1-D batch of JPEG or PNG strings, shape [B] (one image is a batch of one: [bytes]); "
    "got a tensor of this rank and shape:"
)
TENSOR_RANK_MESSAGE = (
    "images must be a 4-D batch of images, shape [B, H, W, C] with C = 1..4 (one image is [1, H, W, C]); "
    "got a tensor of this rank and shape:"
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
_HEADER_BYTES = 32


# === Header parsing: sizes are read (and checked) before any pixel is decoded ===


def encoded_image_size(contents):
    """(height, width) int64 of one JPEG or PNG string, from its header only.

    PNG: the IHDR chunk's big-endian width and height (bytes 16-24). JPEG: libjpeg's
    header parse (`tf.image.extract_jpeg_shape`, no decoding). Anything else fails an
    assertion (InvalidArgument, `NOT_AN_IMAGE_MESSAGE`).
    """
    head = tf.strings.substr(contents, 0, _HEADER_BYTES)  # shorter strings come back shorter
    head = tf.strings.join([head, tf.constant(b"\0" * _HEADER_BYTES)])  # so substr below is in range
    length = tf.strings.length(contents)
    is_png = tf.logical_and(
        tf.equal(tf.strings.substr(head, 0, 8), PNG_MAGIC),
        tf.logical_and(tf.equal(tf.strings.substr(head, 12, 4), b"IHDR"), length >= 24),
    )
    is_jpeg = tf.equal(tf.strings.substr(head, 0, 3), JPEG_MAGIC)
    check = tf.debugging.Assert(tf.logical_or(is_png, is_jpeg), [NOT_AN_IMAGE_MESSAGE])
    with tf.control_dependencies([check]):
        return tf.cond(is_png, lambda: _png_size(head), lambda: _jpeg_size(contents))


def _png_size(head):
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(head, 16, 8), tf.uint8), tf.int64)
    width = raw[0] * 16777216 + raw[1] * 65536 + raw[2] * 256 + raw[3]
    height = raw[4] * 16777216 + raw[5] * 65536 + raw[6] * 256 + raw[7]
    return tf.stack([height, width])


def _jpeg_size(contents):
    return tf.cast(tf.image.extract_jpeg_shape(contents)[:2], tf.int64)


def size_checks(sizes, max_pixels):
    """Assertions that every (height, width) row of `sizes` is non-empty and small enough."""
    sizes = tf.cast(sizes, tf.int64)
    heights, widths = sizes[:, 0], sizes[:, 1]
    nonempty = tf.debugging.Assert(
        tf.reduce_all(tf.logical_and(heights > 0, widths > 0)), [EMPTY_IMAGE_MESSAGE, sizes]
    )
    with tf.control_dependencies([nonempty]):
        pixels = heights * widths
        worst = tf.argmax(pixels)
        small = tf.debugging.Assert(
            tf.reduce_all(pixels <= max_pixels),
            [TOO_LARGE_MESSAGE, heights[worst], widths[worst], tf.constant(max_pixels, tf.int64)],
        )
    return [nonempty, small]


def batch_check(count):
    return tf.debugging.Assert(count > 0, [EMPTY_BATCH_MESSAGE])


def with_rank(images, rank, message):
    """`images` with its rank checked (InvalidArgument `message` + the rank and shape sent) and set.

    The signatures take tensors of any rank, so that a request of the wrong rank (a single
    image without its batch axis, a nested list one level too deep) reaches this check
    instead of failing in an op that indexes the missing axis. (`tf.ensure_shape` would
    fail first, with a message that does not say what a request should be.) A tensor of
    another rank is replaced by a placeholder image the checks let through, so that only
    the assertion can fail.
    """
    right_rank = tf.equal(tf.rank(images), rank)
    check = tf.debugging.Assert(right_rank, [message, tf.rank(images), tf.shape(images)], summarize=8)
    if rank == 1:
        placeholder = tf.io.encode_png(tf.zeros([1, 1, 3], tf.uint8))[tf.newaxis]
    else:
        placeholder = tf.zeros([1] * (rank - 1) + [3], images.dtype)
    with tf.control_dependencies([check]):
        checked = tf.cond(right_rank, lambda: tf.identity(images), lambda: placeholder)
    checked.set_shape([None] * rank)
    return checked


def decode_rgb(contents):
    """uint8 [H, W, 3] from JPEG/PNG bytes: gray -> RGB, alpha dropped."""
    image = tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def to_rgb(images):
    """[B, H, W, C] with C in 1..4 -> [B, H, W, 3] (gray replicated, alpha dropped)."""
    channels = tf.shape(images)[3]
    check = tf.debugging.Assert(tf.logical_and(channels >= 1, channels <= 4), [CHANNELS_MESSAGE, channels])
    with tf.control_dependencies([check]):
        rgb = tf.cond(
            channels >= 3,
            lambda: images[..., :3],
            lambda: tf.tile(images[..., :1], [1, 1, 1, 3]),
        )
    rgb.set_shape([None, None, None, 3])
    return rgb


def segmenter_classes(model, output):
    """Number of classes of `model`'s `output` (the last axis of its logits)."""
    outputs = model.output
    tensor = outputs[output] if isinstance(outputs, dict) and output is not None else outputs
    return tensor.shape[-1]


def class_map_png_dtype(num_classes):
    """uint8 when every class id fits in 8 bits (up to 256 classes), else uint16."""
    return tf.uint8 if num_classes <= 256 else tf.uint16


def encode_class_maps(classes, sizes, dtype):
    """[B] PNG strings: `classes[b]` (int32 `[B, H, W]`) cropped to `sizes[b]` (height, width),
    as a one-channel `dtype` image (the batch padding, -1, is cropped off first)."""

    def one(index):
        height, width = sizes[index, 0], sizes[index, 1]
        image = tf.cast(classes[index, :height, :width, tf.newaxis], dtype)
        return tf.io.encode_png(image)

    return tf.map_fn(one, tf.range(tf.shape(classes)[0]), fn_output_signature=tf.TensorSpec([], tf.string))


# === The network with padding and test-time augmentation ===


class Segmenter:
    """Class scores of a Keras segmentation model on RGB 0-255 images of any size.

    The body of the exported signatures (`export_saved_model` traces it); callable on
    tensors in eager mode as well.

    Args:
        model: keras.Model. Takes RGB 0-255 images `[B, H, W, 3]` and returns a dict of
            logits (or a single logits tensor), e.g. `SPGNet`. A model that does not pad
            itself to a multiple of 32 (`spgnet_keras.multiscale.pads_itself`) is given
            images padded with the mean colour (`pad_to_stride`).
        output: str. The key of `model`'s output dict to serve.
        scales: tuple of float. Image scales whose softmax probabilities are averaged.
        flip: bool. Also average over horizontally flipped images.
        output_size: str or (int, int). "original" or a (height, width) the scores are
            resized to.
        include_probabilities: bool. Also return the softmax probabilities.

    Example:

    ```python
    segmenter = Segmenter(model, scales=(1.0, 1.5), flip=True)
    classes = segmenter(tf.zeros([1, 50, 70, 3]))["classes"]  # int32 [1, 50, 70]
    ```
    """

    def __init__(self, model, output=PREDICTION, scales=(1.0,), flip=False, output_size="original",
                 include_probabilities=False):
        self.model = model
        self.output = output
        self.scales = tuple(float(s) for s in scales)
        self.flip = bool(flip)
        self.output_size = output_size
        self.include_probabilities = bool(include_probabilities)
        self.pads_itself = pads_itself(model)

    @property
    def averages(self):
        return len(self.scales) > 1 or self.scales[0] != 1.0 or self.flip

    def logits(self, images):
        """Logits `[B, H, W, C]` of the selected output at the size of the 0-255 `images`
        (padded to a multiple of 32 by the model itself, or here, and cropped back)."""
        shape = tf.shape(images)
        height, width = shape[1], shape[2]
        outputs = self.model(images if self.pads_itself else pad_to_stride(images), training=False)
        if isinstance(outputs, dict):
            outputs = outputs[self.output]
        return tf.cast(outputs, tf.float32)[:, :height, :width, :]

    def __call__(self, images):
        """`images`: float32 RGB 0-255 `[B, H, W, 3]`. Returns a dict with `classes`
        (int32 `[B, H', W']`) and, if asked, `probabilities` (`[B, H', W', C]`)."""
        images = tf.cast(images, tf.float32)
        if not self.averages:
            scores = self.logits(images)
            probabilities = tf.nn.softmax(scores) if self.include_probabilities else None
        else:
            probabilities = multi_scale_probabilities(self.logits, images, self.scales, self.flip)
            scores = probabilities
        if self.output_size != "original":
            if probabilities is None:
                probabilities = tf.nn.softmax(scores)
            probabilities = tf.image.resize(probabilities, self.output_size, method="bilinear")
            scores = probabilities
        result = {OUTPUT_CLASSES: tf.argmax(scores, axis=-1, output_type=tf.int32)}
        if self.include_probabilities:
            result[OUTPUT_PROBABILITIES] = probabilities
        return result

    # === Signature bodies ===

    def serve_tensor(self, images, max_pixels):
        """Signature body for a `[B, H, W, C]` uint8 or float32 (0-255) batch."""
        images = with_rank(images, 4, TENSOR_RANK_MESSAGE)
        shape = tf.shape(images)
        checks = [batch_check(shape[0])]
        with tf.control_dependencies(checks):
            checks += size_checks(tf.reshape(shape[1:3], [1, 2]), max_pixels)
        if images.dtype.is_floating:
            checks.append(tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(images)), [NOT_FINITE_MESSAGE]))
        with tf.control_dependencies(checks):
            rgb = to_rgb(images)
        result = self(tf.cast(rgb, tf.float32))
        result[OUTPUT_IMAGE_SIZES] = self._sizes_output(tf.tile(tf.reshape(shape[1:3], [1, 2]), [shape[0], 1]))
        return result

    def serve_encoded(self, images, max_pixels):
        """Signature body for a `[B]` batch of JPEG/PNG strings (sizes may differ)."""
        images = with_rank(images, 1, ENCODED_RANK_MESSAGE)
        count = tf.size(images)
        with tf.control_dependencies([batch_check(count)]):
            sizes = tf.map_fn(encoded_image_size, images, fn_output_signature=tf.TensorSpec([2], tf.int64))
        checks = size_checks(sizes, max_pixels)
        with tf.control_dependencies(checks):
            sizes = tf.cast(sizes, tf.int32)
            max_size = tf.reduce_max(sizes, axis=0)
        if self.output_size == "original":
            pad_to = max_size
        else:
            pad_to = tf.constant(self.output_size, tf.int32)

        def outputs_of(result, pads):
            outputs = [tf.pad(result[OUTPUT_CLASSES], [[0, 0]] + pads, constant_values=PAD_CLASS)]
            if self.include_probabilities:
                outputs.append(tf.pad(result[OUTPUT_PROBABILITIES], [[0, 0]] + pads + [[0, 0]]))
            return tuple(outputs)

        def one(index):
            result = self(tf.cast(decode_rgb(images[index]), tf.float32)[tf.newaxis])
            shape = tf.shape(result[OUTPUT_CLASSES])
            return tuple(output[0] for output in outputs_of(
                result, [[0, pad_to[0] - shape[1]], [0, pad_to[1] - shape[2]]]))

        def one_by_one():
            # One image at a time (sizes differ), which also bounds the memory used.
            return tf.map_fn(one, tf.range(count), fn_output_signature=tuple(signature), parallel_iterations=1)

        def as_one_batch():
            # Images of one size: decoded into one batch and run together, as `predict_images` runs them.
            decoded = tf.map_fn(decode_rgb, images, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
            return outputs_of(self(tf.cast(decoded, tf.float32)), [[0, 0], [0, 0]])

        signature = [tf.TensorSpec([None, None], tf.int32)]
        if self.include_probabilities:
            signature.append(tf.TensorSpec([None, None, None], tf.float32))
        with tf.control_dependencies(checks):
            same_size = tf.reduce_all(tf.equal(sizes, sizes[:1]))
        outputs = tf.cond(same_size, as_one_batch, one_by_one)
        result = {OUTPUT_CLASSES: outputs[0]}
        if self.include_probabilities:
            result[OUTPUT_PROBABILITIES] = outputs[1]
        result[OUTPUT_IMAGE_SIZES] = self._sizes_output(sizes)
        return result

    def serve_png(self, images, max_pixels):
        """Signature body of `predict_classes_png`: `serve_encoded`'s class maps as PNGs
        (`OUTPUT_CLASSES_PNG`, each at its image's own size) and `image_sizes`."""
        plain = Segmenter(self.model, self.output, self.scales, self.flip, self.output_size)  # no probabilities
        result = plain.serve_encoded(images, max_pixels)
        dtype = class_map_png_dtype(segmenter_classes(self.model, self.output))
        sizes = result[OUTPUT_IMAGE_SIZES]
        return {OUTPUT_CLASSES_PNG: encode_class_maps(result[OUTPUT_CLASSES], sizes, dtype), OUTPUT_IMAGE_SIZES: sizes}

    def _sizes_output(self, sizes):
        """(height, width) of each image's outputs before batch padding."""
        sizes = tf.cast(sizes, tf.int32)
        if self.output_size == "original":
            return sizes
        return tf.tile(tf.constant([self.output_size], tf.int32), [tf.shape(sizes)[0], 1])
