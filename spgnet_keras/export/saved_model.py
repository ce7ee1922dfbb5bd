"""SavedModel export for TF Serving: `export_saved_model`."""

import json
import os
import shutil
import uuid
from pathlib import Path

import keras
import tensorflow as tf

from spgnet_keras.constants import MAX_IMAGE_PIXELS, PREDICTION
from spgnet_keras.errors import InvalidInputError, SPGNetError
from spgnet_keras.export.folding import PRECISIONS, fold_batchnorm, with_precision
from spgnet_keras.export.serving import (
    DEFAULT_MAX_PIXELS,
    INPUT_NAME,
    OUTPUT_CLASSES,
    OUTPUT_CLASSES_PNG,
    OUTPUT_IMAGE_SIZES,
    OUTPUT_PROBABILITIES,
    PAD_CLASS,
    SIGNATURE_ENCODED,
    SIGNATURE_FLOAT,
    SIGNATURE_PNG,
    SIGNATURE_UINT8,
    Segmenter,
    segmenter_classes,
)
from spgnet_keras.models.spgnet import SPGNet, check_takes_raw_images
from spgnet_keras.multiscale import test_time_options
from spgnet_keras.scales import check_scales

METADATA_FILE = "spgnet_export.json"
# Largest fixed output size (height * width) of a served class map: the largest image too.
MAX_OUTPUT_PIXELS = MAX_IMAGE_PIXELS


def export_saved_model(
    model,
    export_dir,
    *,
    output=PREDICTION,
    scales=None,
    flip=None,
    test_time=None,
    output_size="original",
    include_probabilities=False,
    max_pixels=DEFAULT_MAX_PIXELS,
    precision="float32",
    overwrite=False,
):
    """Writes `model` as a SavedModel that TF Serving loads, with preprocessing inside.

    The SavedModel is written with `keras.export.ExportArchive` (a SavedModel holding a
    plain `tf.Module` of Keras 3 variables can fail in TF Serving's C++ loader) and has
    three signatures, all returning `classes` (int32 `[B, H, W]`), `image_sizes` (int32
    `[B, 2]`) and, with `include_probabilities=True`, `probabilities` (float32
    `[B, H, W, C]`):

    - `serving_default`: `images`, a `[B]` tf.string batch of JPEG or PNG bytes. Images
      of different sizes are allowed; outputs are padded at the bottom/right to the
      largest one, `classes` with -1 and `probabilities` with 0.
    - `predict_images`: `images`, uint8 `[B, H, W, C]`.
    - `predict_images_float`: `images`, float32 `[B, H, W, C]` in 0-255.

    A fourth, `predict_classes_png`, takes `serving_default`'s input and returns only
    `classes_png_bytes` (`[B]` strings: each class map at its image's own size as a
    grayscale PNG, which TF Serving's REST API sends base64-encoded) and `image_sizes`.

    C may be 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA): gray is replicated to RGB
    and alpha is dropped. Inside the graph: padding to a multiple of 32 (bottom/right,
    ImageNet mean colour), the model (which normalises its own 0-255 input), crop back,
    optional multi-scale / flip averaging of softmax probabilities, optional resize to
    `output_size`, argmax. Bad input (a tensor of the wrong rank, not
    JPEG/PNG, empty batch, zero-sized image, more than `max_pixels` pixels - checked
    from the header before decoding, NaN/inf floats, 5+ channels) raises
    InvalidArgument.

    The served network is the inference graph: an `SPGNet`'s BatchNorms are folded into
    its convolutions (`fold_batchnorm`), and with `precision="bfloat16"` it computes in
    bfloat16 (`with_precision`; the input normalisation and the logits stay float32).

    Args:
        model: a Keras model taking RGB 0-255 images and returning a dict of logits,
            e.g. `SPGNet`. An `SPGNet` built for a fixed input size is rebuilt
            with `image_shape=(None, None, 3)` and the same weights.
        export_dir: the version folder, `<base>/<model_name>/<version>` with a numeric
            version (TF Serving's layout).
        output: which output to serve ("prediction" = last stage, "stage1", ...).
        scales: image scales to average over (e.g. (0.75, 1.0, 1.25)); default (1.0,).
        flip: also average over horizontal flips; default False.
        test_time: a `spgnet_keras.multiscale.TestTimeOptions` giving `scales` and `flip`
            instead (not together with them; its `window` must be None: the served graph
            runs whole images, and its `batch_size` is not used).
        output_size: "original" (each image's own size) or a fixed (height, width) of
            at most `MAX_OUTPUT_PIXELS` pixels.
        include_probabilities: add the `probabilities` output.
        max_pixels: largest height * width accepted.
        precision: "float32" or "bfloat16" (an `SPGNet` only).
        overwrite: replace an existing version folder (otherwise ValueError).

    Returns:
        The `Path` of the written version folder.

    `assets.extra/spgnet_export.json` describes the export for clients: the signatures, the
    options, and `class_names` / `palette` (`classes` value `i` is `class_names[i]`), the
    model's own when it knows them (`class_names_given`).

    On another Keras backend (JAX), the model is exported by a TensorFlow-backend child
    interpreter (`spgnet_keras.export.from_backend`): the same SavedModel.

    The export is atomic: the SavedModel is written to a hidden sibling folder (a name
    TF Serving ignores) and renamed into place; on failure nothing is left behind.
    """
    check_takes_raw_images(model)
    export_dir = Path(export_dir)
    test_time = served_test_time(test_time, scales, flip)
    options = check_options(model, output, test_time.scales, test_time.flip, output_size, include_probabilities,
                            max_pixels)
    check_precision(model, precision)
    check_version_dir(export_dir)
    if export_dir.exists() and not overwrite:
        raise InvalidInputError(f"Export folder {export_dir} already exists; pass overwrite=True (--overwrite) to replace it.")
    check_replaces_only_an_export(export_dir)
    if keras.backend.backend() != "tensorflow":  # the served graph is TensorFlow code
        from spgnet_keras.export.from_backend import export_in_tensorflow_process

        return export_in_tensorflow_process(model, export_dir, **options, precision=precision, overwrite=overwrite)
    serving_model = inference_graph(servable_model(model), precision)
    segmenter = Segmenter(
        serving_model,
        output=options["output"],
        scales=options["scales"],
        flip=options["flip"],
        output_size=options["output_size"],
        include_probabilities=options["include_probabilities"],
    )
    archive = build_archive(segmenter, max_pixels)
    metadata = {
        "format": "spgnet_keras SavedModel",
        "num_classes": int(segmenter_classes(serving_model, options["output"])),
        "signatures": signature_summary(options["include_probabilities"]),
        "pad_class": PAD_CLASS,
        "precision": precision,
        "batchnorm_folded": isinstance(serving_model, SPGNet),
        **options,
        **class_metadata(model),
    }
    write_atomically(export_dir, lambda tmp: _write(archive, tmp, metadata), overwrite=overwrite)
    return export_dir


def class_metadata(model):
    """`class_names` and `palette` of the served classes (`classes[b, y, x] = i` is
    `class_names[i]`, drawn in `palette[i]`) for `assets.extra/spgnet_export.json`: the model's
    own (a trained SPGNet keeps them), else `class_0, class_1, ...` and the default palette."""
    from spgnet_keras.classes import default_class_names, default_palette

    num_classes = int(segmenter_classes(model, PREDICTION if isinstance(model.output, dict) else None))
    names = getattr(model, "class_names", None)
    palette = getattr(model, "palette", None)
    return {
        "class_names": list(names) if names is not None else list(default_class_names(num_classes)),
        "class_names_given": names is not None,
        "palette": [list(c) for c in palette] if palette is not None else default_palette(num_classes).tolist(),
    }


def served_test_time(test_time, scales, flip):
    """The `TestTimeOptions` of an export (`test_time`, or built from `scales` / `flip`)."""
    test_time = test_time_options(test_time, scales=scales, flip=flip)
    if test_time.window is not None:
        raise InvalidInputError("The exported SavedModel runs whole images: `test_time.window` must be None.")
    return test_time


def check_options(model, output, scales, flip, output_size, include_probabilities, max_pixels):
    """Validated export options (ValueError with a readable message otherwise)."""
    outputs = model.output
    names = sorted(outputs) if isinstance(outputs, dict) else [PREDICTION]
    if output not in names:
        raise InvalidInputError(f"`output` must be one of the model's outputs {names}, got {output!r}.")
    scales = check_scales(scales)
    if output_size != "original":
        output_size = list(check_output_size(output_size))
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise InvalidInputError(f"`max_pixels` must be a positive integer, got {max_pixels!r}.")
    shape = model.input_shape
    if not (isinstance(shape, tuple) and len(shape) == 4 and shape[-1] == 3):
        raise InvalidInputError(f"The model must take one RGB image input (batch, height, width, 3), got {shape}.")
    return {
        "output": output,
        "scales": list(scales),
        "flip": bool(flip),
        "output_size": output_size,
        "include_probabilities": bool(include_probabilities),
        "max_pixels": max_pixels,
    }


def check_output_size(output_size):
    """(height, width) of a fixed served output size: two positive integers with at most
    `MAX_OUTPUT_PIXELS` pixels (a larger map would need more memory than a request may
    take, so every request would fail). ValueError otherwise."""
    try:
        height, width = (int(v) for v in output_size)
    except (TypeError, ValueError):
        raise InvalidInputError(f'`output_size` must be "original" or (height, width), got {output_size!r}.') from None
    if height <= 0 or width <= 0 or (height, width) != tuple(output_size):
        raise InvalidInputError(f"`output_size` must be two positive integers, got {output_size!r}.")
    if height * width > MAX_OUTPUT_PIXELS:
        raise InvalidInputError(
            f"`output_size` {height}x{width} has {height * width} pixels, more than the limit of "
            f"{MAX_OUTPUT_PIXELS} (4096x4096) that a served class map may have."
        )
    return height, width


def check_precision(model, precision):
    if precision not in PRECISIONS:
        raise InvalidInputError(f"`precision` must be one of {PRECISIONS}, got {precision!r}.")
    if precision != "float32" and not isinstance(model, SPGNet):
        raise InvalidInputError(f"precision={precision!r} needs an SPGNet, got {type(model).__name__}.")


def inference_graph(model, precision="float32"):
    """The network that is served: an `SPGNet` with its BatchNorms folded, in `precision`."""
    if not isinstance(model, SPGNet):
        return model
    return with_precision(fold_batchnorm(model), precision)


def check_version_dir(export_dir):
    if not export_dir.name.isdigit():
        raise InvalidInputError(
            f"The export folder must end in a numeric version, <base>/<model_name>/<version> as TF Serving "
            f"expects (e.g. models/spgnet/1), got {str(export_dir)!r}."
        )
    same = same_version_folders(export_dir)
    if same:
        raise InvalidInputError(
            f"{same[0]} already holds version {int(export_dir.name)}: TF Serving reads the folders "
            f"{same[0].name!r} and {export_dir.name!r} as the same version. Export to {same[0]} (with "
            "--overwrite to replace it) or choose another version number."
        )


def same_version_folders(export_dir):
    """Sibling folders whose names are the same number as `export_dir`'s ("1" and "01")."""
    parent, version = export_dir.parent, int(export_dir.name)
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir()
                  if p.is_dir() and p.name.isdigit() and p.name != export_dir.name and int(p.name) == version)


def servable_model(model):
    """`model`, or an `SPGNet` rebuilt to take any height/width when it was built for one."""
    height, width = model.input_shape[1:3]
    if height is None and width is None:
        return model
    from spgnet_keras.models.spgnet import SPGNet

    if not isinstance(model, SPGNet):
        raise InvalidInputError(
            f"The model takes a fixed input size {model.input_shape}; serving needs (None, None, 3) "
            "(any height and width)."
        )
    config = {**model.get_config(), "image_shape": [None, None, model.input_shape[-1]]}
    rebuilt = SPGNet.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def signature_summary(include_probabilities):
    outputs = {
        OUTPUT_CLASSES: ["int32", [-1, -1, -1]],
        OUTPUT_IMAGE_SIZES: ["int32", [-1, 2]],
    }
    if include_probabilities:
        outputs[OUTPUT_PROBABILITIES] = ["float32", [-1, -1, -1, -1]]
    return {
        SIGNATURE_ENCODED: {"inputs": {INPUT_NAME: ["string", [-1]]}, "outputs": outputs},
        SIGNATURE_UINT8: {"inputs": {INPUT_NAME: ["uint8", [-1, -1, -1, -1]]}, "outputs": outputs},
        SIGNATURE_FLOAT: {"inputs": {INPUT_NAME: ["float32", [-1, -1, -1, -1]]}, "outputs": outputs},
        SIGNATURE_PNG: {"inputs": {INPUT_NAME: ["string", [-1]]},
                        "outputs": {OUTPUT_CLASSES_PNG: ["string", [-1]], OUTPUT_IMAGE_SIZES: ["int32", [-1, 2]]}},
    }


def build_archive(segmenter, max_pixels):
    archive = keras.export.ExportArchive()
    # No archive.track(model): the variables the endpoints capture are saved once
    # (`_all_variables`); tracking the model as well stores every weight a second time.

    def encoded(images):
        return segmenter.serve_encoded(images, max_pixels)

    def uint8_images(images):
        return segmenter.serve_tensor(images, max_pixels)

    def float_images(images):
        return segmenter.serve_tensor(images, max_pixels)

    def class_map_pngs(images):
        return segmenter.serve_png(images, max_pixels)

    # serving_default first: ExportArchive aliases the first endpoint as the default.
    # Any rank: the bodies check it, so a request of the wrong rank gets a clear InvalidArgument.
    archive.add_endpoint(SIGNATURE_ENCODED, encoded, [tf.TensorSpec(None, tf.string, name=INPUT_NAME)])
    archive.add_endpoint(SIGNATURE_UINT8, uint8_images, [tf.TensorSpec(None, tf.uint8, name=INPUT_NAME)])
    archive.add_endpoint(SIGNATURE_FLOAT, float_images, [tf.TensorSpec(None, tf.float32, name=INPUT_NAME)])
    archive.add_endpoint(SIGNATURE_PNG, class_map_pngs, [tf.TensorSpec(None, tf.string, name=INPUT_NAME)])
    return archive


def _write(archive, folder, metadata):
    archive.write_out(str(folder), verbose=False)
    extra = Path(folder) / "assets.extra"
    extra.mkdir(exist_ok=True)
    (extra / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


class ExportWriteError(SPGNetError, OSError):
    """An export could not be written (a full disk, a read-only folder); an earlier version is intact."""


# What a failed write says, in the words of the system, found in the long messages of
# TensorFlow's file system errors (OutOfRangeError, PermissionDeniedError, ...).
WRITE_FAILURES = ("No space left on device", "File too large", "Read-only file system", "Permission denied",
                  "Disk quota exceeded")


def write_failure_cause(error) -> str:
    """A few words on why a write failed: the errno's text, a known phrase of a TensorFlow
    error, or the first line of the message."""
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno)
    text = getattr(error, "message", None) or str(error)
    for phrase in WRITE_FAILURES:
        if phrase.lower() in text.lower():
            return phrase
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__


def check_replaces_only_an_export(export_dir):
    """InvalidInputError when `export_dir` exists and is neither empty nor a SavedModel: `overwrite`
    replaces an earlier export, never a folder of other files (a run, a dataset) that has a number for a name."""
    export_dir = Path(export_dir)
    if export_dir.is_dir() and any(export_dir.iterdir()) and not (export_dir / "saved_model.pb").is_file():
        raise InvalidInputError(
            f"Export folder {export_dir} holds files but no saved_model.pb: it is not an earlier export, and "
            "overwrite replaces only those; choose another version folder.")
    if export_dir.exists() and not export_dir.is_dir():
        raise InvalidInputError(f"Export folder {export_dir} is a file, not a folder; choose another version folder.")


def write_atomically(target, write, overwrite=False):
    """Runs `write(tmp)` on a hidden sibling of `target`, then renames it to `target`.

    The temporary name starts with "." and is not a number, so TF Serving, which polls
    `<base>/<model_name>/` for numeric folders, never sees a half-written version. An
    existing `target` is replaced only with `overwrite=True` (moved aside, then
    deleted after the rename). Whatever fails, the temporary folder is removed; a write that
    fails (a full disk, a read-only folder) raises `ExportWriteError` naming the folder and
    the cause in one line.
    """
    target = Path(target)
    token = uuid.uuid4().hex[:8]
    tmp = target.parent / f".{target.name}.tmp-{token}"
    old = target.parent / f".{target.name}.old-{token}"
    kept = f"the previous version in {target} is intact" if target.exists() else "nothing was written"
    try:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(target)
            write(tmp)
        except (OSError, tf.errors.OpError) as error:  # a full disk, a read-only or foreign folder
            cause = write_failure_cause(error)
        else:
            cause = None
        if cause is not None:
            raise ExportWriteError(f"Could not write the export {target}: {cause}; {kept}.")
        if target.exists():
            if not overwrite:
                raise InvalidInputError(f"Export folder {target} already exists; pass overwrite=True to replace it.")
            os.rename(target, old)
        os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old.exists():
            if target.exists():
                shutil.rmtree(old)
            else:  # the rename into place failed: put the previous version back
                os.rename(old, target)
    return target


def remove_stale_temporaries(target):
    """Hidden `.N.tmp-*` / `.N.old-*` folders an interrupted export of `target` left behind:
    a half-written version is deleted; a moved-aside previous version is deleted when
    `target` exists, and renamed back to `target` when it does not."""
    for stale in sorted(target.parent.glob(f".{target.name}.tmp-*")):
        shutil.rmtree(stale)
    for stale in sorted(target.parent.glob(f".{target.name}.old-*")):
        if target.exists():
            shutil.rmtree(stale)
        else:
            os.rename(stale, target)
