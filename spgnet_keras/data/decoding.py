"""One rule for reading image and mask files: the dataset check, training, evaluation and inference.

Every file is decoded by TensorFlow's decoders with the explicit handling below, in the
`tf.data` graph (`decode_image_in_graph`, `decode_mask_in_graph`) and eagerly
(`read_image`, `read_mask`: the same ops, run on one file), so that every
accepted file gives the same pixels everywhere, and what cannot be read is refused, with the
file and the reason, before any work starts. The served SavedModel decodes JPEG/PNG bytes
with the same TensorFlow decoder (`spgnet_keras.export.serving`).

Images become uint8 RGB `[H, W, 3]`. By format (and the Pillow mode that writes it):

========  =============================================================================
PNG       every colour type and bit depth: `1`/`L` (1-8 bit grey) replicated to RGB;
          `LA` grey replicated, alpha dropped; `P` expanded to its palette colours
          (transparency dropped); `RGB`; `RGBA` alpha dropped (not composited:
          transparent pixels keep their stored colour); 16-bit (`I;16`) keeps the high
          byte (`v >> 8`).
JPEG      `L` grey replicated; `RGB`/`YCbCr`; `CMYK` converted by TensorFlow's
          JPEG decoder. Pixels are libjpeg-turbo's (TensorFlow's), which may differ by a
          few levels from other decoders (e.g. Pillow's).
BMP       8-bit (`L` or `P`): each index is looked up in the file's colour table
          (TensorFlow's BMP decoder alone would return the indices as grey); 24-bit
          `RGB`; 32-bit `RGBA` with alpha dropped. Refused: 1-, 4- and 16-bit (`1`
          mode) and compressed (RLE, bit-field) BMPs.
GIF       first frame, palette colours; transparent pixels are black (TensorFlow's GIF
          decoder). That decoder decodes every frame before keeping the first, so the
          frames x width x height of an animation counts against `MAX_IMAGE_PIXELS`.
WebP      still images; alpha dropped. Animated WebPs are refused (TensorFlow's WebP
          decoder corrupts memory and crashes the process on them).
TIFF      refused (TensorFlow has no TIFF decoder), as is everything else.
========  =============================================================================

Every reader (the dataset check, the `tf.data` pipeline, `load_image`) refuses an image
whose decoded size, frames x width x height as the header declares it, is more than
`spgnet_keras.constants.MAX_IMAGE_PIXELS`, before decoding it (`decoded_pixels`).

Pillow modes `I`, `F`, `PA` and the TIFF-only layouts can therefore only reach the
package after conversion to one of the formats above. EXIF orientation is not applied.

Masks must be PNG. Class-index masks (`mask_format="index"`) must be grey (values are the
classes) of 8 bits (Pillow `L`), 16 bits (`I;16`, as many labelling and GIS tools write them;
every value must be at most 255, else the file is refused naming its largest value) or 1 bit
(`1`: binary masks, read as 0 and 1), or palette (Pillow `P`; the *indices* are the classes,
recovered from the expanded colours via the file's palette); everything else (RGB, grey
+alpha, 2-/4-bit grey, whose stored levels TensorFlow and Pillow both scale to 0..255) is
refused. Colour masks (`mask_format="color"`) are read as RGB by the image rule for PNG.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from spgnet_keras.constants import MAX_IMAGE_PIXELS
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.output_files import replace_atomically

__all__ = [
    "IMAGE_FORMATS",
    "image_problem",
    "mask_problem",
    "decode_rgb",
    "decode_image_in_graph",
    "decode_mask_in_graph",
    "to_rgb",
    "check_image_header",
    "read_image",
    "decode_image_bytes",
    "IMAGE_EXTENSIONS",
    "check_mask_file",
    "read_mask",
    "load_image",
    "load_label",
    "save_label",
    "check_image_file",
    "check_pixel_count",
    "check_decoded_pixels",
    "decoded_size",
    "decoded_pixels",
]

IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WebP")
"""The image file formats every part of the package reads (by content, not file name)."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
"""File name endings of those formats: what folder listings (datasets, `spgnet predict`) pick up."""

_HEADER_BYTES = 64
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Reasons a file is refused; index = the code returned by image_problem / mask_problem.
_REASONS = (
    "",
    f"not a {', '.join(IMAGE_FORMATS[:-1])} or {IMAGE_FORMATS[-1]} file",
    "a TIFF file; TensorFlow, which decodes images for training and serving, has no TIFF decoder, "
    "so no part of spgnet_keras reads TIFF: convert it to PNG",
    "a BMP of 1, 4 or 16 bits per pixel; only 8-bit (colour table), 24-bit and 32-bit BMPs are read: "
    "convert it to PNG",
    "a compressed (RLE or bit-field) BMP; only uncompressed BMPs are read: convert it to PNG",
    "a BMP whose colour table is cut off",
    "not a PNG file; masks must be PNG",
    "a PNG whose layout is not a class-index mask: index masks must be 8-, 16- or 1-bit grey (Pillow mode 'L', "
    "'I;16', '1') or palette ('P') PNGs; use mask_format='color' with a palette for colour masks",
    "an animated WebP; TensorFlow's WebP decoder crashes the process on animations: save its first frame as PNG",
    f"an image of more pixels (every frame of a GIF counted) than the limit of {MAX_IMAGE_PIXELS} "
    "(spgnet_keras.constants.MAX_IMAGE_PIXELS)",
)
(_OK, _UNKNOWN, _TIFF, _BMP_DEPTH, _BMP_COMPRESSED, _BMP_TABLE, _NOT_PNG, _NOT_INDEX_PNG, _ANIMATED_WEBP,
 _TOO_MANY_PIXELS) = range(len(_REASONS))
_WEBP_ANIMATION_FLAG = 0x02  # VP8X chunk, flags byte (file offset 20)
_BMP_DEPTHS = (8, 24, 32)
_PNG_GREY, _PNG_PALETTE = 0, 3  # PNG colour types (IHDR byte 25)
_INDEX_GREY_DEPTHS = (1, 8, 16)  # bits per pixel of grey class-index masks (IHDR byte 24)
MAX_MASK_VALUE = 255  # the largest stored class value (255 = ignore) a 16-bit mask may hold
_WIDE_MASK = ("is a 16-bit class-index PNG holding the value",
              f"; class values must be 0..{MAX_MASK_VALUE} ({MAX_MASK_VALUE} = ignore): remap them before saving")


# === Header inspection (TF ops, used in the graph and eagerly) ===


def _head(contents: tf.Tensor) -> tf.Tensor:
    """The first bytes of `contents`, zero-padded so that fixed offsets are always in range."""
    return tf.strings.substr(
        tf.strings.join([tf.strings.substr(contents, 0, _HEADER_BYTES), b"\0" * _HEADER_BYTES]), 0, _HEADER_BYTES)


def _starts_with(head: tf.Tensor, signature: bytes, offset: int = 0) -> tf.Tensor:
    return tf.equal(tf.strings.substr(head, offset, len(signature)), signature)


def _unsigned(head: tf.Tensor, offset: int, size: int) -> tf.Tensor:
    """The little-endian unsigned integer (int64) stored in `size` bytes of `head` at `offset`."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(head, offset, size), tf.uint8), tf.int64)
    weights = tf.constant([256**i for i in range(size)], tf.int64)
    return tf.reduce_sum(raw * weights)


def _is_bmp(head):
    return _starts_with(head, b"BM")


def _is_animated_webp(head):
    extended = tf.logical_and(_starts_with(head, b"WEBP", 8), _starts_with(head, b"VP8X", 12))
    flags = _unsigned(head, 20, 1)
    return tf.logical_and(extended, tf.bitwise.bitwise_and(flags, _WEBP_ANIMATION_FLAG) != 0)


def _bmp_layout(head):
    """(bits per pixel, compression, colour-table offset, colour-table entries) of a BMP header."""
    bits = _unsigned(head, 28, 2)
    used = _unsigned(head, 46, 4)
    entries = tf.where(tf.logical_or(used == 0, used > 256), tf.constant(256, tf.int64), used)
    return bits, _unsigned(head, 30, 4), 14 + _unsigned(head, 14, 4), entries


def image_problem(contents: tf.Tensor, length: tf.Tensor | None = None) -> tf.Tensor:
    """int32 code of why the image bytes `contents` are refused (0: accepted), from the header only.

    `contents` may be the first bytes of the file only when `length` (int64) gives the file's size.
    """
    head = _head(contents)
    if length is None:
        length = tf.cast(tf.strings.length(contents), tf.int64)
    known = tf.reduce_any(tf.stack([
        _starts_with(head, _PNG_MAGIC), _starts_with(head, b"\xff\xd8\xff"), _is_bmp(head),
        _starts_with(head, b"GIF8"),
        tf.logical_and(_starts_with(head, b"RIFF"), _starts_with(head, b"WEBP", 8)),
    ]))
    tiff = tf.logical_or(_starts_with(head, b"II*\0"), _starts_with(head, b"MM\0*"))
    bits, compression, table_offset, entries = _bmp_layout(head)
    bmp = _is_bmp(head)
    table_cut = tf.logical_and(bits == 8, length < table_offset + 4 * entries)
    code = tf.constant(_OK)
    for problem, found in ((_BMP_TABLE, table_cut), (_BMP_COMPRESSED, compression != 0),
                           (_BMP_DEPTH, tf.reduce_all(tf.not_equal(bits, _BMP_DEPTHS)))):
        code = tf.where(tf.logical_and(bmp, found), problem, code)
    code = tf.where(_is_animated_webp(head), _ANIMATED_WEBP, code)
    return tf.where(known, code, tf.where(tiff, _TIFF, _UNKNOWN))


def mask_problem(contents: tf.Tensor, index: bool) -> tf.Tensor:
    """int32 code of why the mask bytes `contents` are refused (0: accepted); `index` for class-index masks."""
    head = _head(contents)
    is_png = tf.logical_and(_starts_with(head, _PNG_MAGIC), _starts_with(head, b"IHDR", 12))
    code = tf.where(is_png, _OK, _NOT_PNG)
    if index:
        depth, colour_type = _unsigned(head, 24, 1), _unsigned(head, 25, 1)
        grey_depth = tf.reduce_any(tf.equal(depth, tf.constant(_INDEX_GREY_DEPTHS, tf.int64)))
        index_layout = tf.logical_or(tf.logical_and(colour_type == _PNG_GREY, grey_depth), colour_type == _PNG_PALETTE)
        code = tf.where(tf.logical_and(is_png, tf.logical_not(index_layout)), _NOT_INDEX_PNG, code)
    return code


# === Decoding (TF ops) ===


def to_rgb(image: tf.Tensor) -> tf.Tensor:
    """A decoded `[H, W, C]` image with C in 1..4 as `[H, W, 3]`: grey replicated, alpha dropped."""
    channel_sources = tf.constant([[0, 0, 0], [0, 0, 0], [0, 1, 2], [0, 1, 2]], tf.int32)
    image = tf.gather(image, channel_sources[tf.shape(image)[-1] - 1], axis=-1)
    image.set_shape([None, None, 3])
    return image


def _bmp_colour_table(contents: tf.Tensor) -> tf.Tensor:
    """uint8 `[256, 3]` RGB colour table of an 8-bit BMP (stored as B, G, R, 0; missing entries black)."""
    _, _, offset, entries = _bmp_layout(_head(contents))
    raw = tf.io.decode_raw(tf.strings.substr(contents, offset, 4 * entries), tf.uint8)
    table = tf.reshape(raw, [-1, 4])[:, 2::-1]
    return tf.pad(table, [[0, 256 - tf.shape(table)[0]], [0, 0]])


def decode_rgb(contents: tf.Tensor) -> tf.Tensor:
    """uint8 RGB `[H, W, 3]` of accepted image bytes (see the module docstring; check
    `image_problem` first)."""
    image = tf.io.decode_image(contents, channels=0, dtype=tf.uint8, expand_animations=False)
    head = _head(contents)
    bits, _, _, _ = _bmp_layout(head)
    palette_bmp = tf.logical_and(_is_bmp(head), bits == 8)
    rgb = tf.cond(palette_bmp,
                  lambda: tf.gather(_bmp_colour_table(contents), tf.cast(image[..., 0], tf.int32)),
                  lambda: to_rgb(image))
    rgb.set_shape([None, None, 3])
    return rgb


def _checked(contents: tf.Tensor, code: tf.Tensor, what: str, path: tf.Tensor) -> tf.Tensor:
    check = tf.debugging.Assert(
        tf.equal(code, _OK), [f"Unreadable {what}", path, "is", tf.gather(tf.constant(_REASONS), code)])
    with tf.control_dependencies([check]):
        return tf.identity(contents)


def _pixel_problem(contents: tf.Tensor) -> tf.Tensor:
    """`_TOO_MANY_PIXELS` when the bytes declare more decoded pixels than `MAX_IMAGE_PIXELS`, else 0
    (`decoded_pixels`, run by Pillow on the header: the eager readers' rule, in the graph)."""
    pixels = tf.numpy_function(lambda data: np.int64(decoded_pixels(data)), [contents], tf.int64, stateful=False)
    return tf.where(tf.reshape(pixels, []) > MAX_IMAGE_PIXELS, _TOO_MANY_PIXELS, _OK)


def decode_image_in_graph(path: tf.Tensor) -> tf.Tensor:
    """Reads and decodes the image file at `path` (scalar string tensor) to uint8 RGB `[H, W, 3]`.

    A refused file fails an assertion (InvalidArgumentError "Unreadable image <path> is <reason>").
    """
    contents = tf.io.read_file(path)
    code = image_problem(contents)
    code = tf.where(code == _OK, _pixel_problem(contents), code)
    return decode_rgb(_checked(contents, code, "image", path))


def decode_mask(contents: tf.Tensor, index: bool, path: tf.Tensor) -> tf.Tensor:
    """Accepted mask bytes as uint8 `[H, W, C]` (palette PNGs expanded to RGB(A)). For class-index
    masks, 16-bit grey values are kept (an assertion naming `path` fails for one above
    `MAX_MASK_VALUE`) and 1-bit grey reads as 0 and 1 (TensorFlow's decoder scales it to 0 and 255)."""
    if not index:
        return tf.io.decode_png(contents, channels=0, dtype=tf.uint8)
    head = _head(contents)
    depth, grey = _unsigned(head, 24, 1), tf.equal(_unsigned(head, 25, 1), _PNG_GREY)

    def sixteen_bit():
        values = tf.io.decode_png(contents, channels=1, dtype=tf.uint16)
        largest = tf.reduce_max(values)
        check = tf.debugging.Assert(largest <= MAX_MASK_VALUE,
                                    ["Unreadable mask", path, _WIDE_MASK[0], largest, _WIDE_MASK[1]])
        with tf.control_dependencies([check]):
            return tf.cast(values, tf.uint8)

    def one_bit():
        return tf.io.decode_png(contents, channels=1, dtype=tf.uint8) // 255

    def eight_bit():
        return tf.io.decode_png(contents, channels=0, dtype=tf.uint8)

    # Only 16- and 1-bit grey masks pay for more than the decode (this runs in the tf.data map).
    layout = tf.where(grey, tf.where(depth == 16, 0, tf.where(depth == 1, 1, 2)), 2)
    return tf.switch_case(tf.cast(layout, tf.int32), [sixteen_bit, one_bit, eight_bit])


def decode_mask_in_graph(path: tf.Tensor, index: bool) -> tf.Tensor:
    """Reads a mask PNG as decoded uint8 `[H, W, C]` (`decode_mask`); refusals as above."""
    contents = tf.io.read_file(path)
    contents = _checked(contents, mask_problem(contents, index), "mask", path)
    return decode_mask(contents, index, path)


# === Eager reading of one file (the same ops) ===

_STRING = tf.TensorSpec([], tf.string)
_image_problem = tf.function(image_problem, input_signature=[_STRING])
_header_problem = tf.function(image_problem, input_signature=[_STRING, tf.TensorSpec([], tf.int64)])
_decode_rgb = tf.function(decode_rgb, input_signature=[_STRING])
_index_mask_problem = tf.function(lambda contents: mask_problem(contents, True), input_signature=[_STRING])
_colour_mask_problem = tf.function(lambda contents: mask_problem(contents, False), input_signature=[_STRING])
_decode_index_mask = tf.function(lambda contents, path: decode_mask(contents, True, path),
                                 input_signature=[_STRING, _STRING])
_decode_colour_mask = tf.function(lambda contents, path: decode_mask(contents, False, path),
                                  input_signature=[_STRING, _STRING])


def _header(path: str | os.PathLike) -> bytes:
    with open(path, "rb") as file:
        return file.read(_HEADER_BYTES)


def _refusal(name, code: int) -> str:
    return f"Not a readable image file: {name} ({_REASONS[code]})"


def check_image_header(path: str | os.PathLike) -> None:
    """ValueError naming `path` and the reason when the image rule refuses the file (header only)."""
    code = int(_header_problem(tf.constant(_header(path)), tf.constant(os.path.getsize(path), tf.int64)))
    if code != _OK:
        raise InvalidInputError(_refusal(path, code))


def decode_image_bytes(data: bytes, name) -> np.ndarray:
    """uint8 RGB `[H, W, 3]` of encoded image bytes; ValueError naming `name` when refused, corrupt
    or of more decoded pixels than `MAX_IMAGE_PIXELS` (checked before decoding)."""
    contents = tf.constant(data)
    code = int(_image_problem(contents))
    if code != _OK:
        raise InvalidInputError(_refusal(name, code))
    check_decoded_pixels(io.BytesIO(data), name)
    try:
        return _decode_rgb(contents).numpy()
    except tf.errors.OpError as error:
        raise InvalidInputError(f"Not a readable image file: {name} ({_last_line(error)})") from None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The image file at `path` as uint8 RGB `[H, W, 3]`, exactly as the `tf.data` pipeline decodes it."""
    return decode_image_bytes(Path(path).read_bytes(), path)


def check_mask_file(path: str | os.PathLike, index: bool) -> None:
    """ValueError naming `path` when the mask rule refuses it (the training pipeline could not
    read it as a class-index mask, `index=True`, or as a colour mask)."""
    code = int((_index_mask_problem if index else _colour_mask_problem)(tf.constant(_header(path))))
    if code != _OK:
        raise InvalidInputError(f"Unreadable mask {path}: {_REASONS[code]}")


def read_mask(path: str | os.PathLike, index: bool) -> np.ndarray:
    """The mask PNG at `path` decoded as in the pipeline (uint8 `[H, W, C]`); ValueError naming it when refused."""
    contents = tf.constant(Path(path).read_bytes())
    code = int((_index_mask_problem if index else _colour_mask_problem)(contents))
    if code != _OK:
        raise InvalidInputError(f"Unreadable mask {path}: {_REASONS[code]}")
    try:
        return (_decode_index_mask if index else _decode_colour_mask)(contents, tf.constant(str(path))).numpy()
    except tf.errors.InvalidArgumentError as error:
        if _WIDE_MASK[0] not in str(error.message):
            raise InvalidInputError(f"Unreadable mask {path}: {_last_line(error)}") from None
        raise InvalidInputError(_assertion_text(error)) from None
    except tf.errors.OpError as error:
        raise InvalidInputError(f"Unreadable mask {path}: {_last_line(error)}") from None


def _assertion_text(error: tf.errors.OpError) -> str:
    """The message of a failed `tf.debugging.Assert` (`[part] [part] ...`) as one sentence."""
    text = _last_line(error).removeprefix("assertion failed: ")
    return " ".join(part.strip() for part in re.findall(r"\[([^\]]*)\]", text)).replace(" ;", ";") or text


def _last_line(error: tf.errors.OpError) -> str:
    """TensorFlow's own reason: the line before its `[[{{node ...}}]]` lines, without the op/device prefix."""
    lines = [line for line in str(error.message).strip().splitlines() if line.strip()]
    node = next((index for index, line in enumerate(lines) if line.lstrip().startswith("[[")), len(lines))
    return lines[max(node - 1, 0)].split("}} ")[-1].strip()


# === Image files for inference (the same rule, with the checks a user's file needs) ===


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file into a `uint8` RGB array `[H, W, 3]`, exactly as training reads it.

    The one decoding rule of `spgnet_keras.data.decoding` (TensorFlow's decoders, also
    used by `make_dataset`, `validate_dataset` and the served SavedModel): PNG, JPEG, BMP,
    GIF and WebP are read; grey (any PNG bit depth) is replicated to three channels; 16-bit
    PNGs keep the high byte; palettes (PNG, GIF, 8-bit BMP) are expanded to their colours;
    an alpha channel is **dropped**, not composited (GIF transparent pixels are black);
    CMYK/YCbCr JPEGs are converted to RGB. TIFF, 1/4/16-bit and compressed BMPs and
    anything else are refused. EXIF orientation is not applied.

    Args:
        path: Image file.

    Returns:
        `np.uint8` array `[H, W, 3]`.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file is refused or unreadable, or declares more than
            `MAX_IMAGE_PIXELS` pixels (the message names it and the reason).
    """
    path = Path(path)
    check_image_file(path)
    return read_image(path)



def decoded_size(source) -> tuple[int, int, int] | None:
    """`(frames, width, height)` TensorFlow's decoder allocates for an image file, from its header.

    `frames` is the frame count of a GIF (its decoder decodes every frame before the first is
    kept), else 1. None when Pillow cannot tell (TensorFlow's decoder then decides alone).

    Args:
        source: A path or a binary file object of encoded image bytes.

    Raises:
        InvalidInputError: Pillow's own decompression-bomb limit (twice its
            `Image.MAX_IMAGE_PIXELS`) fired first: the image is far beyond `MAX_IMAGE_PIXELS`.
    """
    try:
        with Image.open(source) as image:
            frames = image.n_frames if image.format == "GIF" else 1
            return frames, image.width, image.height
    except Image.DecompressionBombError as error:
        raise InvalidInputError(f"declares more pixels than the limit of {MAX_IMAGE_PIXELS} ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        return None


def decoded_pixels(data: bytes) -> int:
    """frames x width x height of `decoded_size` for encoded bytes; -1 when unknown, and past
    `MAX_IMAGE_PIXELS` when Pillow's own bomb limit fired (used in the `tf.data` graph)."""
    try:
        size = decoded_size(io.BytesIO(data))
    except InvalidInputError:
        return MAX_IMAGE_PIXELS + 1
    return -1 if size is None else size[0] * size[1] * size[2]


def check_decoded_pixels(source, name, max_pixels=MAX_IMAGE_PIXELS) -> None:
    """InvalidInputError naming `name` when the image `source` (a path or a binary file object)
    would decode to more than `max_pixels` pixels (`decoded_size`); nothing is decoded."""
    try:
        size = decoded_size(source)
    except InvalidInputError as error:
        raise InvalidInputError(f"Image {name} {error}") from None
    if size is None:
        return
    frames, width, height = size
    if frames > 1 and frames * width * height > max_pixels:
        raise InvalidInputError(
            f"Image {name} is a GIF of {frames} frames of {width}x{height}: TensorFlow's GIF decoder decodes every "
            f"frame ({frames * width * height} pixels) before keeping the first, more than the limit of {max_pixels} "
            "(spgnet_keras.constants.MAX_IMAGE_PIXELS); save its first frame as PNG."
        )
    check_pixel_count((width, height), name, max_pixels)


def check_pixel_count(size, path, max_pixels=MAX_IMAGE_PIXELS):
    """ValueError when an image's declared width x height exceeds `max_pixels`."""
    width, height = size
    if width * height > max_pixels:
        raise InvalidInputError(
            f"Image {path} declares {width}x{height} = {width * height} pixels, more than the limit of "
            f"{max_pixels} (spgnet_keras.constants.MAX_IMAGE_PIXELS); resize it first."
        )


def check_image_file(path: str | os.PathLike) -> None:
    """Raises the errors of `load_image` that the file header shows (cheap): a missing
    file, a format or layout the decoding rule refuses, too many declared pixels."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image not found: {path}")
    check_image_header(path)
    check_decoded_pixels(path, path)


def load_label(path: str | os.PathLike, label_map: np.ndarray | None = None) -> np.ndarray:
    """Reads a class-index label PNG (8-, 16- or 1-bit grey, or palette `P` indices) as int64.

    Args:
        path: Label file.
        label_map: Optional lookup table applied to the values (e.g. Cityscapes label id ->
            train id, `spgnet_keras.data.cityscapes.LABEL_ID_TO_TRAIN_ID`).

    Raises:
        FileNotFoundError: Missing file.
        ValueError: Not a PNG the training pipeline reads as a class-index mask (an RGB
            colour-coded mask, 2/4-bit grey, a 16-bit value above 255, ...), naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Label file not found: {path}")
    # The training pipeline's rule decides what is a class-index mask (grey or palette PNG);
    # Pillow then reads the indices (1-bit grey as 0 / 1), as the dataset check does.
    check_mask_file(path, index=True)
    try:
        with Image.open(path) as image:
            label = np.asarray(image).astype(np.int64)
    except (OSError, SyntaxError) as error:
        raise InvalidInputError(f"Not a readable label image: {path} ({error})") from None
    if label.max(initial=0) > MAX_MASK_VALUE:  # a 16-bit grey mask: the pipeline's rule (`decode_mask`)
        raise InvalidInputError(f"Unreadable mask {path} {_WIDE_MASK[0]} {label.max()}{_WIDE_MASK[1]}")
    if label_map is not None:
        label_map = np.asarray(label_map)
        if label.min(initial=0) < 0 or label.max(initial=0) >= len(label_map):
            raise InvalidInputError(f"Label {path} has values outside the label map's range [0, {len(label_map)}).")
        label = label_map[label].astype(np.int64)
    return label


def save_label(path: str | os.PathLike, classes, palette=None) -> Path:
    """Writes a class-index map as the 8-bit PNG that `load_label` reads back unchanged.

    Grey (Pillow mode `L`, the value of a pixel is its class) without `palette`; with one, a
    palette PNG (mode `P`, the indices are the classes, shown in the palette's colours). The
    folder is made when missing; an existing file is replaced, atomically (a write that fails
    or is killed leaves the old file, never half a PNG).

    Args:
        path: str or path-like. The PNG file to write.
        classes: array-like of int, `[H, W]`. Class indices in `[0, 255]` (the ignore label
            255 included).
        palette: optional array-like of int, `[N, 3]`. RGB colours (0-255) of classes
            `0..N-1`, `N` at most 256 and above the largest index.

    Returns:
        The `Path` written.

    Raises:
        InvalidInputError: `classes` is not a 2-D integer array or holds a value outside
            `[0, 255]` (more than 256 classes do not fit an 8-bit PNG), or `palette` is not
            `[N, 3]` colours covering those classes.

    Example:

    ```python
    save_label("out/labels/frame.png", prediction)  # prediction: int [H, W]
    assert (load_label("out/labels/frame.png") == prediction).all()
    ```
    """
    path = Path(path)
    classes = np.asarray(classes)
    if classes.ndim != 2 or not (np.issubdtype(classes.dtype, np.integer) or classes.dtype == bool):
        raise InvalidInputError(
            f"A class-index PNG ({path}) needs a 2-D integer array [H, W], got {classes.dtype} of shape {classes.shape}."
        )
    if classes.max(initial=0) > 255:
        raise InvalidInputError(
            f"More than 256 classes do not fit an 8-bit PNG: {path} would hold {classes.max()}."
        )
    if classes.min(initial=0) < 0:
        raise InvalidInputError(f"Class indices must not be negative: {path} would hold {classes.min()}.")
    image = Image.fromarray(classes.astype(np.uint8))  # mode L
    if palette is not None:
        colours = np.asarray(palette)
        if (colours.ndim != 2 or colours.shape[1] != 3 or not 0 < len(colours) <= 256
                or colours.min() < 0 or colours.max() > 255):
            raise InvalidInputError(f"A palette is N <= 256 RGB colours 0-255 [N, 3], got shape {colours.shape}.")
        if classes.max(initial=0) >= len(colours):
            raise InvalidInputError(
                f"The palette has {len(colours)} colours; {path} would hold class {classes.max()}."
            )
        image.putpalette(colours.astype(np.uint8).reshape(-1).tolist())  # L -> P, the values kept as indices
    path.parent.mkdir(parents=True, exist_ok=True)
    return replace_atomically(path, lambda temporary: image.save(temporary, format="PNG"))
