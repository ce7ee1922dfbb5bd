"""Reference computations and test images for the export tests (numpy + the Keras model)."""

import io
import struct
import zlib

import keras
import numpy as np
from PIL import Image

from spgnet_keras import SPGNet
from spgnet_keras.constants import IMAGENET_MEAN, OUTPUT_STRIDE

QUANTIZED_CLASSES = 5


def quantizable_model(seed):
    """The small SPGNet the int8 export tests quantize (1xR18, D=16, 5 classes).

    decoder_channels=16: with 8, a decoder block's 2 inner channels can be dead (all zero on
    every calibration image), a degenerate int8 scale that XNNPACK refuses."""
    keras.utils.set_random_seed(seed)
    return SPGNet(QUANTIZED_CLASSES, backbones=("resnet18",), decoder_channels=16)


def keras_logits(model, images, output="prediction"):
    """Logits of `model` on uint8/float RGB 0-255 `[B, H, W, 3]` images, padded at the
    bottom/right with the ImageNet mean colour to a multiple of 32, and cropped back.

    The model normalises its own 0-255 input (its "preprocessing" layer), so the images
    are fed as they are; the mean colour is what the served graph pads with.
    """
    images = np.asarray(images, dtype="float32")
    height, width = images.shape[1:3]
    pad_h, pad_w = -height % OUTPUT_STRIDE, -width % OUTPUT_STRIDE
    padded = np.pad(images, [(0, 0), (0, pad_h), (0, pad_w), (0, 0)])
    padded[:, height:, :, :] = IMAGENET_MEAN
    padded[:, :, width:, :] = IMAGENET_MEAN
    logits = model.predict(padded, verbose=0)
    if isinstance(logits, dict):
        logits = logits[output]
    return np.asarray(logits)[:, :height, :width, :]


def keras_classes(model, images, output="prediction"):
    return np.argmax(keras_logits(model, images, output), axis=-1).astype("int32")


def softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def smooth_image(height, width, seed=0):
    """A uint8 RGB image with large smooth regions and some noise (a JPEG-friendly picture)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype("float32")
    channels = []
    for c in range(3):
        fy, fx, phase = rng.uniform(0.02, 0.15, size=2).tolist() + [rng.uniform(0, 6.28)]
        channels.append(127 + 100 * np.sin(fy * y + phase) * np.cos(fx * x - phase))
    image = np.stack(channels, axis=-1) + rng.normal(0, 12, size=(height, width, 3))
    return np.clip(image, 0, 255).astype("uint8")


def encode(image, fmt, **kwargs):
    """PNG / JPEG bytes of a uint8 array ([H, W], [H, W, 3] or [H, W, 4])."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def png_with_header_size(png, width, height):
    """`png` with its IHDR width/height replaced (CRC fixed): the header lies, pixels unchanged."""
    ihdr_data = struct.pack(">II", width, height) + png[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr_data) & 0xFFFFFFFF)
    return png[:16] + ihdr_data + crc + png[33:]


def jpeg_with_header_size(jpeg, width, height):
    """`jpeg` with its SOF0/SOF2 frame height/width replaced."""
    position = 2
    while position < len(jpeg):
        marker = jpeg[position + 1]
        length = struct.unpack(">H", jpeg[position + 2 : position + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            start = position + 5  # after marker, length, precision
            return jpeg[:start] + struct.pack(">HH", height, width) + jpeg[start + 4 :]
        position += 2 + length
    raise ValueError("no SOF marker")
