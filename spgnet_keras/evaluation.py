"""Full-image evaluation: confusion matrix, per-class IoU, mIoU, pixel accuracy, and
Cityscapes benchmark-format predictions.

Counting conventions are those of `spgnet_keras.metrics` (rows = ground truth,
columns = prediction, label 255 skipped, IoU NaN and excluded from the mean for a class
absent from both labels and predictions), which are also cityscapesscripts'
(`evalPixelLevelSemanticLabeling`). One addition, needed to agree with that script on
saved result files: a *prediction* outside `[0, C)` (e.g. a Cityscapes "void" label id,
mapped to 255) is counted in `EvaluationResult.unassigned` as a miss (false
negative) of the true class, and is nobody's false positive. Models never produce such
predictions, so for `evaluate` `unassigned` stays 0.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from spgnet_keras.classes import default_class_names
from spgnet_keras.constants import IGNORE_LABEL, PREDICTION
from spgnet_keras.data.decoding import load_image, load_label
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.evaluation_result import EvaluationResult, format_table, to_json  # noqa: F401  (public API)
from spgnet_keras.image_scores import ImageScore
from spgnet_keras.inference import predict_logits
from spgnet_keras.labels import check_label_values
from spgnet_keras.models.spgnet import check_takes_raw_images
from spgnet_keras.multiscale import TestTimeOptions, test_time_options
from spgnet_keras.prediction_files import (  # noqa: F401  (re-exported: evaluation's public API)
    CityscapesResultWriter,
    IndexPngWriter,
    cityscapes_result_path,
    prediction_writer_for,
)
from spgnet_keras.scoring import confusion_matrix

__all__ = [
    "CityscapesResultWriter",
    "EvaluationResult",
    "IndexPngWriter",
    "cityscapes_result_path",
    "dataset_pairs",
    "evaluate",
    "evaluate_data",
    "evaluate_dataset",
    "evaluate_label_files",
    "format_table",
    "to_json",
]


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------


def _accumulate(result_cm, result_unassigned, label, prediction, num_classes, ignore_index):
    """Adds one label/prediction pair, predictions outside [0, C) going to `unassigned`."""
    label = np.asarray(label).astype(np.int64)
    prediction = np.asarray(prediction).astype(np.int64)
    if label.shape != prediction.shape:
        raise InvalidInputError(f"Label shape {label.shape} differs from prediction shape {prediction.shape}.")
    outside = (prediction < 0) | (prediction >= num_classes)
    if outside.any():
        kept = label[outside]
        kept = kept[kept != ignore_index]
        check_label_values(kept, num_classes, None, "evaluate")
        result_unassigned += np.bincount(kept, minlength=num_classes)
        label = np.where(outside, ignore_index, label)
        prediction = np.where(outside, 0, prediction)
    result_cm += confusion_matrix(label, prediction, num_classes, ignore_index=ignore_index)


def _scored(index, path, confusion, unassigned, label, prediction, ignore_index):
    """Accumulates one image into `confusion` / `unassigned` and returns its `ImageScore`."""
    image_confusion, image_unassigned = np.zeros_like(confusion), np.zeros_like(unassigned)
    _accumulate(image_confusion, image_unassigned, label, prediction, len(unassigned), ignore_index)
    confusion += image_confusion
    unassigned += image_unassigned
    return ImageScore(index, None if path is None else str(path), image_confusion, image_unassigned)


def _resolve_classes(model, num_classes, class_names, output):
    """(C, class names); ValueError when the model's class count differs from the data's."""
    if num_classes is None and class_names is not None:
        num_classes = len(class_names)
    predicted = _model_classes(model, output)
    if num_classes is not None and predicted is not None and int(num_classes) != predicted:
        raise InvalidInputError(
            f"The model predicts {predicted} classes but the data has {int(num_classes)}: its scores would "
            "be meaningless. Evaluate a model trained for this dataset (fine-tune one with "
            "SPGNet.from_preset(..., num_classes=..., weights=PATH))."
        )
    num_classes = predicted if num_classes is None else num_classes
    if num_classes is None:
        raise InvalidInputError("num_classes is unknown; pass num_classes or class_names.")
    num_classes = int(num_classes)
    if class_names is None:  # the names a trained SPGNet keeps, else class_0, class_1, ...
        model_names = getattr(model, "class_names", None)
        class_names = model_names if model_names is not None and len(model_names) == num_classes \
            else default_class_names(num_classes)
    if len(class_names) != num_classes:
        raise InvalidInputError(f"{len(class_names)} class names for {num_classes} classes.")
    return num_classes, tuple(class_names)


def _model_classes(model, output):
    """Channels of the model's `output` logits, or None (no model, or not a functional model)."""
    if model is None:
        return None
    try:
        outputs = model.output
        tensor = outputs[output] if isinstance(outputs, dict) else outputs
        return int(tensor.shape[-1])
    except (AttributeError, KeyError, ValueError, TypeError):
        return None


def _iterate_examples(data, label_map, read_label=None):
    """Yields `(image, label, image_path)`; images as arrays (batches allowed for arrays).
    Label files are read by `read_label(path)` when given, else by `load_label`."""
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        data = data.as_numpy_iterator()
    count = 0
    for element in data:
        if not isinstance(element, (tuple, list)) or len(element) < 2:
            raise InvalidInputError("Evaluation data must yield (image, label) pairs.")
        image, label = element[0], element[1]
        count += 1
        if isinstance(image, (str, os.PathLike)):
            if not isinstance(label, (str, os.PathLike)):
                raise InvalidInputError("A pair with an image path needs a label path.")
            array = load_image(image)
            label_array = load_label(label, label_map) if read_label is None else read_label(label)
            if array.shape[:2] != label_array.shape:
                raise InvalidInputError(
                    f"Image {image} is {array.shape[1]}x{array.shape[0]} but label {label} is "
                    f"{label_array.shape[1]}x{label_array.shape[0]}."
                )
            yield array, label_array, str(image)
        else:
            image, label = np.asarray(image), np.asarray(label)
            if label.ndim == image.ndim and label.shape[-1] == 1:
                label = label[..., 0]
            if label_map is not None:
                label = np.asarray(label_map)[label.astype(np.int64)]
            yield image, label, None
    if count == 0:
        raise InvalidInputError("No images to evaluate (empty dataset).")


def evaluate(
    model,
    data,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    scales: Sequence[float] | None = None,
    flip: bool | None = None,
    window=None,
    stride=None,
    output: str = PREDICTION,
    batch_size: int | None = None,
    ignore_index: int = IGNORE_LABEL,
    label_map: np.ndarray | None = None,
    prediction_writer: Callable | None = None,
    max_images: int | None = None,
    progress: Callable[[int, str | None], None] | None = None,
    read_label: Callable[[str], np.ndarray] | None = None,
    *,
    test_time: TestTimeOptions | None = None,
) -> EvaluationResult:
    """Evaluates a model on full images with `spgnet_keras.inference.predict_logits`.

    Args:
        model: Segmentation model (SPGNet or any model giving per-pixel logits).
        data: Either a sequence of `(image_path, label_path)` pairs (labels are
            single-channel class-index PNGs, see `load_label`), or an iterable /
            `tf.data.Dataset` of `(image, label)` arrays, unbatched `[H, W, 3]` /
            `[H, W]` or batched `[N, H, W, 3]` / `[N, H, W]` (e.g.
            `make_dataset(..., training=False, batch_size=1)`), RGB in [0, 255].
        num_classes: `C` (default: `len(class_names)` or the model's output channels).
        class_names: Names of the classes (default: the model's `class_names`, else
            `class_0`...).
        scales, flip, window, stride, output, batch_size: Test-time settings of
            `spgnet_keras.inference.predict_logits` (or `test_time`, not both).
        ignore_index: Label value not counted.
        label_map: Lookup table applied to labels (e.g. Cityscapes label id -> train id).
        prediction_writer: Called as `writer(prediction int32 [H, W], image_path or None)`
            for every image, e.g. `CityscapesResultWriter`.
        max_images: Stop after this many images.
        progress: Called as `progress(images_done, image_path)`.
        read_label: Reads a label file of `data` into int labels `[H, W]` (e.g. a
            `spgnet_keras.data.MaskReader` for colour masks or label maps); default
            `spgnet_keras.data.load_label` with `label_map`.
        test_time: TestTimeOptions. The test-time settings in one value.

    Returns:
        `EvaluationResult`.

    Raises:
        ValueError: The model predicts another number of classes than the data has
            (`num_classes` / `class_names`), an SPGNet built to take normalised input,
            no images, a label outside `[0, C)`, or bad test-time settings.
    """
    check_takes_raw_images(model)  # before reading any data
    # test-time settings too: a bad one must not fail after the first image
    test_time = test_time_options(test_time, scales=scales, flip=flip, window=window, stride=stride,
                                  batch_size=batch_size)
    num_classes, class_names = _resolve_classes(model, num_classes, class_names, output)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    unassigned = np.zeros(num_classes, np.int64)
    per_image = []
    settings = {
        "scales": list(test_time.scales),
        "flip": test_time.flip,
        "window": None if test_time.window is None else list(test_time.window),
        "stride": None if test_time.stride is None else list(test_time.stride),
        "output": output,
    }
    start = time.perf_counter()
    done = 0
    for image, label, path in _iterate_examples(data, label_map, read_label):
        if max_images is not None and done >= max_images:
            break
        logits = predict_logits(model, image, output=output, test_time=test_time)
        predictions = np.argmax(logits, axis=-1).astype(np.int32)
        if predictions.ndim == 2:
            predictions, labels = predictions[None], label[None]
        else:
            labels = label
        if labels.shape != predictions.shape:
            raise InvalidInputError(f"Label shape {labels.shape} differs from image size {predictions.shape}.")
        for prediction, one_label in zip(predictions, labels):
            if max_images is not None and done >= max_images:
                break
            per_image.append(_scored(done, path, confusion, unassigned, one_label, prediction, ignore_index))
            if prediction_writer is not None:
                prediction_writer(prediction, path)
            done += 1
            if progress is not None:
                progress(done, path)
    return EvaluationResult(confusion, class_names, done, unassigned, settings, time.perf_counter() - start,
                            per_image)


def evaluate_label_files(
    prediction_paths: Sequence[str | os.PathLike],
    label_paths: Sequence[str | os.PathLike],
    num_classes: int,
    class_names: Sequence[str] | None = None,
    label_map: np.ndarray | None = None,
    prediction_map: np.ndarray | None = None,
    ignore_index: int = IGNORE_LABEL,
) -> EvaluationResult:
    """Scores saved prediction PNGs against label PNGs (no model involved).

    For Cityscapes result files pass `label_map=prediction_map=LABEL_ID_TO_TRAIN_ID`:
    predicted label ids of void classes become 255 and count as misses
    (`EvaluationResult.unassigned`), as in cityscapesscripts.
    """
    if len(prediction_paths) != len(label_paths):
        raise InvalidInputError(f"{len(prediction_paths)} predictions but {len(label_paths)} labels.")
    if not prediction_paths:
        raise InvalidInputError("No files to evaluate.")
    num_classes, class_names = _resolve_classes(None, num_classes, class_names, None)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    unassigned = np.zeros(num_classes, np.int64)
    per_image = []
    start = time.perf_counter()
    for prediction_path, label_path in zip(prediction_paths, label_paths):
        prediction = load_label(prediction_path, prediction_map)
        label = load_label(label_path, label_map)
        if prediction.shape != label.shape:
            raise InvalidInputError(f"{prediction_path} {prediction.shape} and {label_path} {label.shape} differ in size.")
        per_image.append(_scored(len(per_image), prediction_path, confusion, unassigned, label, prediction,
                                 ignore_index))
    return EvaluationResult(
        confusion, class_names, len(label_paths), unassigned, {"files": True}, time.perf_counter() - start, per_image
    )


def dataset_pairs(dataset: str, root: str | os.PathLike, split: str = "val") -> list[tuple[str, str]]:
    """`(image, label)` file pairs of a dataset split, as `evaluate_dataset` reads them.

    Raises:
        ValueError: Unknown dataset name; no images (`DatasetNotFoundError` is both a
            `ValueError` and a `FileNotFoundError`).
        FileNotFoundError: Missing root or split folders.
    """
    return _split_of(dataset, root, split).val_pairs


def _split_of(dataset, root, split):
    from spgnet_keras.data import MaskStyle, resolve_data

    if dataset not in ("camvid", "cityscapes", "folder"):
        raise InvalidInputError(f"Unknown dataset {dataset!r}; expected camvid, cityscapes or folder.")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Dataset root not found: {root}")
    return resolve_data(dataset, root, val_split=split, splits="val", style=MaskStyle("index"))


def evaluate_dataset(
    model,
    dataset: str,
    root: str | os.PathLike,
    split: str = "val",
    predictions_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    **kwargs,
) -> EvaluationResult:
    """Evaluates on a named dataset's split from its files (full images, one at a time).

    Args:
        model: Segmentation model.
        dataset: `"camvid"`, `"cityscapes"` or `"folder"` (layouts of
            `spgnet_keras.data.dataset_files`; `"folder"` also accepts a flat
            `root/images` + `root/labels` pair of folders). Cityscapes labels
            (`*_gtFine_labelIds.png`) are mapped to train ids.
        root: Dataset root.
        split: Split name.
        predictions_dir: If given, predictions are written there: Cityscapes as label-id
            PNGs in the benchmark layout (`CityscapesResultWriter`), other datasets
            as class-index PNGs (`IndexPngWriter`).
        overwrite: Replace prediction files that already exist.
        **kwargs: Passed to `evaluate` (scales, flip, window, max_images, ...).
    """
    result = evaluate_data(model, _split_of(dataset, root, split), predictions_dir, overwrite, **kwargs)
    result.settings.update(root=str(root), split=split)
    return result


def evaluate_data(model, data, predictions_dir: str | os.PathLike | None = None, overwrite: bool = False,
                  **kwargs) -> EvaluationResult:
    """Evaluates on the validation pairs of `data` (a `spgnet_keras.data.ResolvedData`
    from `spgnet_keras.data.resolve_data`, or read back from a run's `data.json`),
    reading every mask as training read it (mask format, palette, label map:
    `spgnet_keras.data.MaskReader`).

    Args:
        model: Segmentation model.
        data: The resolved data; its classes name the table (else the model's names).
        predictions_dir: As in `evaluate_dataset`; checked before anything is predicted
            (`spgnet_keras.prediction_files.prediction_writer_for`: never into the dataset's
            folders, never over its files).
        overwrite: Replace prediction files that already exist.
        **kwargs: Passed to `evaluate`.
    """
    from spgnet_keras.data import MaskReader

    pairs = data.val_pairs
    if not pairs:
        raise InvalidInputError("No images to evaluate (empty dataset).")
    kwargs.setdefault("read_label", MaskReader([mask for _, mask in pairs], **data.dataset_arguments()))
    if data.spec is not None:
        kwargs.setdefault("class_names", data.spec.class_names)
        kwargs.setdefault("ignore_index", data.spec.ignore_index)
    if predictions_dir is not None:
        selected = pairs if kwargs.get("max_images") is None else pairs[: kwargs["max_images"]]
        kwargs.setdefault("prediction_writer", prediction_writer_for(predictions_dir, selected, overwrite=overwrite,
                                                                 cityscapes=data.dataset == "cityscapes"))
    result = evaluate(model, pairs, **kwargs)
    result.settings.update(dataset=data.dataset, validation=data.val_source)
    return result
