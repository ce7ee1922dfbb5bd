"""int8 TFLite export with calibration images, and how much the quantized model changes.

`export_int8_tflite` quantizes the (BatchNorm-folded) network with int8 activations and
per-channel int8 weights, calibrated on images from the user's data; `QuantizationReport`
says how often the int8 class map equals the float model's on those images and, given a
folder of images with masks, the mIoU of both.

Calibration images of another size than the export's fixed input are resized to it.
Validation images are fitted to it: an image that fits is padded at the bottom/right with
the ImageNet mean colour (what the model does inside) and the logits are cropped back; a
larger one is resized bilinearly to the input and its logits resized back to the image.
"""

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from spgnet_keras import preprocessing
from spgnet_keras.constants import PREDICTION
from spgnet_keras.data import list_images, load_image
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.export.portable import _single_output_network, export_tflite, open_runner

DEFAULT_CALIBRATION_IMAGES = 200
MAX_CALIBRATION_IMAGES = 1000
DEFAULT_MIN_INT8_AGREEMENT = 0.9


@dataclasses.dataclass(frozen=True)
class QuantizationReport:
    """int8 model vs the float Keras model (what `quantization_report` returns).

    Attributes:
        calibration_images: int. Images the int8 model was calibrated and compared on.
        agreement: float. Fraction of calibration pixels with the same class.
        validation_images: int. Labelled images scored (0: none).
        float_miou: float. mIoU of the float model on them, or None.
        int8_miou: float. mIoU of the int8 model on them, or None.

    Example:

    ```python
    report = quantization_report(model, "model_int8.tflite", images)
    print(report)  # int8 vs float32: same class on ...% of the pixels of ... calibration images
    ```
    """

    calibration_images: int
    agreement: float  # fraction of calibration pixels with the same class
    validation_images: int = 0
    float_miou: float | None = None
    int8_miou: float | None = None

    def __str__(self):
        text = (
            f"int8 vs float32: same class on {100 * self.agreement:.2f}% of the pixels of "
            f"{self.calibration_images} calibration images"
        )
        if self.validation_images:
            text += (
                f"; mIoU on {self.validation_images} validation images: float32 {100 * self.float_miou:.2f}, "
                f"int8 {100 * self.int8_miou:.2f} ({100 * (self.int8_miou - self.float_miou):+.2f} points)"
            )
        return text


def calibration_images(folder, height, width, limit=DEFAULT_CALIBRATION_IMAGES):
    """Up to `limit` images of `folder` (evenly spread over its sorted files), float32 RGB
    0-255 resized (bilinear) to `height` x `width`: `[N, height, width, 3]`.

    Resized rather than padded: a small image padded to a large input would calibrate the
    activations mostly on the flat padding colour."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CALIBRATION_IMAGES:
        raise InvalidInputError(f"The number of calibration images must be in [1, {MAX_CALIBRATION_IMAGES}], got {limit!r}.")
    files = list_images([Path(folder)])
    chosen = [files[i] for i in np.unique(np.linspace(0, len(files) - 1, min(limit, len(files))).round().astype(int))]
    return np.stack([resized(load_image(path), height, width) for path in chosen])


def resized(image, height, width):
    image = np.asarray(image, dtype="float32")
    if image.shape[:2] == (height, width):
        return image
    return tf.image.resize(image[None], (height, width), method="bilinear")[0].numpy()


def validation_pairs(folder):
    """(image, mask) path pairs of a folder with `images/` and `labels/` (a CamVid split)."""
    from spgnet_keras.data import folder_files

    folder = Path(folder)
    return folder_files(folder / "images", folder / "labels")


def fit_image(image, height, width):
    """(float32 image of exactly height x width, function taking its logits back to the image's size)."""
    image = np.asarray(image, dtype="float32")
    size = image.shape[:2]
    if size[0] <= height and size[1] <= width:
        padded = preprocessing.pad_bottom_right(tf.constant(image[None]), height, width)[0].numpy()
        return padded, lambda logits: logits[: size[0], : size[1]]
    return resized(image, height, width), lambda logits: resized(logits, *size)


def export_int8_tflite(model, path, input_shape, calibration, *, output=PREDICTION):
    """Writes the int8 TFLite file; `calibration`: float32 `[N, H, W, 3]` images of the export size."""
    return export_tflite(model, path, input_shape, output=output, quantize="int8", calibration_images=calibration)


def quantization_report(model, path, calibration, validation=None, *, output=PREDICTION):
    """Compares the int8 file at `path` with the float `model`.

    Args:
        model: the Keras model that was quantized.
        path: the int8 `.tflite` file.
        calibration: the calibration images (as given to `export_int8_tflite`).
        validation: optional (image, mask) path pairs; masks hold class indices, 255 = ignore.

    Returns:
        A `QuantizationReport`.
    """
    runner = open_runner(path)
    network, _ = _single_output_network(model, runner.input_shape, output)
    keras_float = KerasRunner(network)
    quantized = BatchRunner(runner)
    same = total = 0
    for float_logits, int8_logits in zip(keras_float.logits(calibration), quantized.logits(calibration)):
        same += int(np.sum(np.argmax(float_logits, -1) == np.argmax(int8_logits, -1)))
        total += float_logits.shape[0] * float_logits.shape[1]
    report = {"calibration_images": len(calibration), "agreement": same / total}
    if validation:
        num_classes = int(network.output.shape[-1])
        height, width = runner.input_shape[1:3]
        report.update(
            validation_images=len(validation),
            float_miou=folder_miou(keras_float, validation, height, width, num_classes),
            int8_miou=folder_miou(quantized, validation, height, width, num_classes),
        )
    return QuantizationReport(**report)


def folder_miou(runner, pairs, height, width, num_classes):
    """mIoU of `runner`'s class maps on (image, mask) pairs, each image fitted to the input size."""
    from spgnet_keras.data import load_label
    from spgnet_keras.metrics import confusion_matrix, mean_iou_from_confusion

    matrix = np.zeros((num_classes, num_classes), np.int64)
    for image_path, mask_path in pairs:
        image, back = fit_image(load_image(image_path), height, width)
        logits = next(runner.logits(image[None]))
        matrix += confusion_matrix(load_label(mask_path), np.argmax(back(logits), -1), num_classes)
    return mean_iou_from_confusion(matrix)


class BatchRunner:
    """Runs a fixed-batch runner on any number of images (the last batch filled with repeats).

    Args:
        runner: callable. An `open_runner` result, with a fixed `input_shape[0]` batch.

    Example:

    ```python
    logits = list(BatchRunner(open_runner("model.tflite")).logits(images))
    ```
    """

    def __init__(self, runner):
        self.runner = runner
        self.batch = int(runner.input_shape[0])

    def logits(self, images):
        """Yields each image's logits `[H, W, C]`, in order."""
        for start in range(0, len(images), self.batch):
            chunk = np.asarray(images[start : start + self.batch], dtype="float32")
            count = len(chunk)
            if count < self.batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], self.batch - count, axis=0)])
            yield from self.runner(chunk)[:count]


class KerasRunner:
    """The float Keras network, called eagerly one batch at a time (no trace to pay for).

    Args:
        network: keras.Model. Returns logits `[B, H, W, C]`.

    Example:

    ```python
    logits = list(KerasRunner(network).logits(images))
    ```
    """

    def __init__(self, network):
        self.network = network
        self.batch = 8

    def logits(self, images):
        for start in range(0, len(images), self.batch):
            chunk = np.asarray(images[start : start + self.batch], dtype="float32")
            yield from np.asarray(self.network(chunk, training=False))
