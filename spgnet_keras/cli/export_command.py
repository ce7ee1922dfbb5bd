"""`spgnet export`: a trained checkpoint as a TF Serving SavedModel, ONNX, TFLite or OpenVINO file.

    spgnet export runs/best.keras --out models/spgnet/1
    spgnet export runs/best.keras --out models/spgnet/2 --scales 0.75,1,1.25 --flip --probabilities
    spgnet export runs/best.keras --format onnx --out spgnet.onnx --input-size 512x1024
    spgnet export runs/best.keras --out models/spgnet/3 --precision bfloat16
    spgnet export runs/best.keras --format tflite --out spgnet_int8.tflite --input-size 384x480 \
        --quantize int8 --calibration data/camvid/train/images --validation data/camvid/val
    spgnet export runs/best.keras --format openvino --out spgnet.xml --input-size 512x1024
    spgnet export runs/best.keras --format openvino --out spgnet_int8.xml --input-size 512x1024 \
        --quantize int8 --calibration data/camvid/train/images --validation data/camvid/val

Every format serves the inference graph with BatchNorm folded into the convolutions.
"""

from pathlib import Path

from spgnet_keras.constants import PREDICTION
from spgnet_keras.errors import InvalidInputError

FORMATS = ("saved_model", "onnx", "tflite", "openvino")
INT8_FORMATS = ("tflite", "openvino")
PRECISIONS = ("float32", "bfloat16")
QUANTIZATIONS = ("int8",)


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint for serving (TF Serving SavedModel, ONNX, TFLite, OpenVINO)",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("checkpoint", type=Path, help="trained model (.keras)")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="saved_model: the version folder BASE/MODEL_NAME/VERSION (numeric VERSION, as TF Serving "
        "expects); onnx / tflite / openvino: the .onnx / .tflite / .xml file (openvino writes its weights "
        "beside it, in .bin)",
    )
    parser.add_argument("--format", choices=FORMATS, default="saved_model", help="what to write (default saved_model)")
    parser.add_argument("--output", default=PREDICTION, help="model output to serve: prediction (last stage), stage1, ...")
    parser.add_argument("--scales", default="1", help="saved_model: comma-separated test-time scales, e.g. 0.75,1,1.25")
    parser.add_argument("--flip", action="store_true", help="saved_model: also average over horizontal flips")
    parser.add_argument(
        "--output-size", default="original", help='saved_model: "original" or HEIGHTxWIDTH of the served class map'
    )
    parser.add_argument("--probabilities", action="store_true", help="saved_model: also return softmax probabilities")
    parser.add_argument("--max-pixels", type=int, default=None, help="saved_model: largest height*width accepted")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version folder / file")
    parser.add_argument("--input-size", default=None, help="onnx / tflite / openvino: fixed HEIGHTxWIDTH (multiples of 32)")
    parser.add_argument("--batch-size", type=int, default=1, help="onnx / tflite / openvino: fixed batch size (default 1)")
    parser.add_argument(
        "--skip-parity-check", action="store_true", help="onnx / tflite / openvino: do not compare the file with Keras"
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="saved_model: compute in float32 (default) or bfloat16 (for CPUs with AVX512-BF16/AMX and GPUs; "
        "the input normalisation and the logits stay float32)",
    )
    parser.add_argument(
        "--quantize", choices=QUANTIZATIONS, default=None,
        help="tflite / openvino: int8 weights (per channel) and activations, calibrated on --calibration images "
        "(openvino: NNCF)",
    )
    parser.add_argument(
        "--calibration", type=Path, default=None,
        help="--quantize int8: folder of images from your data (a few hundred) to calibrate the activations on",
    )
    parser.add_argument(
        "--calibration-images", type=int, default=None,
        help="--quantize int8: how many --calibration images to use, spread over the folder "
        "(default 200, at most 1000)",
    )
    parser.add_argument(
        "--validation", type=Path, default=None,
        help="--quantize int8: folder with images/ and labels/ (e.g. a CamVid split): report the mIoU of the float "
        "and int8 models on it",
    )
    parser.add_argument(
        "--min-agreement", type=float, default=None,
        help="onnx / tflite / openvino: smallest fraction of pixels whose class must equal Keras' (default 0.999; "
        "0.9 for int8, "
        "measured on the calibration images)",
    )
    parser.set_defaults(func=run)


def parse_size(text, option):
    """'512x1024' -> (512, 1024)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        height, width = (int(p) for p in parts)
    except ValueError:
        raise InvalidInputError(f"{option} must be HEIGHTxWIDTH (e.g. 512x1024), got {text!r}.") from None
    if height <= 0 or width <= 0:
        raise InvalidInputError(f"{option} must be positive, got {text!r}.")
    return height, width


def parse_scales(text):
    try:
        scales = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise InvalidInputError(f"--scales must be comma-separated numbers (e.g. 0.75,1,1.25), got {text!r}.") from None
    from spgnet_keras.scales import check_scales

    return check_scales(scales)  # the one scale rule of predict, evaluate and export


def load_checkpoint(path):
    from spgnet_keras.models.checkpoints import read_saved_model

    return read_saved_model(path, "checkpoint")


def check_quantization_options(args):
    """ValueError for a quantization option that does not apply, before anything is loaded."""
    if args.quantize is None:
        given = [name for name, value in (("--calibration", args.calibration), ("--validation", args.validation),
                                          ("--calibration-images", args.calibration_images)) if value is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise InvalidInputError(f"{' / '.join(given)} {verb} only to --quantize int8.")
        return
    if args.format not in INT8_FORMATS:
        raise InvalidInputError(f"--quantize int8 is for --format {' / '.join(INT8_FORMATS)}, got --format {args.format}.")
    if args.calibration is None:
        raise InvalidInputError("--quantize int8 needs --calibration DIR (a folder of a few hundred images from your data).")
    from spgnet_keras.data import list_images
    from spgnet_keras.export.quantize import DEFAULT_CALIBRATION_IMAGES, MAX_CALIBRATION_IMAGES, validation_pairs

    count = DEFAULT_CALIBRATION_IMAGES if args.calibration_images is None else args.calibration_images
    if not 1 <= count <= MAX_CALIBRATION_IMAGES:
        raise InvalidInputError(f"--calibration-images must be in [1, {MAX_CALIBRATION_IMAGES}], got {count}.")
    args.calibration_images = count
    list_images([args.calibration])  # a missing or empty folder is an error now, not after the load
    if args.validation is not None:
        validation_pairs(args.validation)


def check_min_agreement(value):
    if value is not None and not 0 <= value <= 1:
        raise InvalidInputError(f"--min-agreement must be a fraction in [0, 1], got {value}.")


def run(args):
    check_min_agreement(args.min_agreement)
    check_quantization_options(args)
    if args.precision != "float32" and args.format != "saved_model":
        raise InvalidInputError(
            f"--precision {args.precision} is for --format saved_model; use --quantize int8 for {' / '.join(INT8_FORMATS)}."
        )
    if args.format == "saved_model":
        scales = parse_scales(args.scales)
        output_size = "original" if args.output_size == "original" else parse_size(args.output_size, "--output-size")
        if args.input_size is not None:
            raise InvalidInputError("--input-size is for --format onnx / tflite / openvino; a SavedModel takes any size.")
        if args.min_agreement is not None:
            raise InvalidInputError("--min-agreement is for --format onnx / tflite / openvino.")
        from spgnet_keras.export import DEFAULT_MAX_PIXELS, export_saved_model
        from spgnet_keras.export.saved_model import check_output_size, check_version_dir

        if output_size != "original":
            try:
                check_output_size(output_size)
            except ValueError as error:
                raise InvalidInputError(str(error).replace("`output_size`", "--output-size")) from None

        check_version_dir(args.out)  # fail before the (slow) checkpoint load
        if args.out.exists() and not args.overwrite:
            raise InvalidInputError(f"Export folder {args.out} already exists; pass --overwrite to replace it.")
        model = load_checkpoint(args.checkpoint)

        path = export_saved_model(
            model,
            args.out,
            output=args.output,
            scales=scales,
            flip=args.flip,
            output_size=output_size,
            include_probabilities=args.probabilities,
            max_pixels=DEFAULT_MAX_PIXELS if args.max_pixels is None else args.max_pixels,
            precision=args.precision,
            overwrite=args.overwrite,
        )
        print(
            f"SavedModel written to {path} ({args.precision}, BatchNorm folded; signatures serving_default, "
            "predict_images, predict_images_float)"
        )
        return 0

    check_tensorflow_backend(args.format)
    if args.input_size is None:
        raise InvalidInputError(f"--format {args.format} needs --input-size HEIGHTxWIDTH (a fixed shape).")
    if args.scales != "1" or args.flip or args.output_size != "original" or args.probabilities:
        raise InvalidInputError("--scales / --flip / --output-size / --probabilities only apply to --format saved_model.")
    if args.batch_size <= 0:
        raise InvalidInputError(f"--batch-size must be positive, got {args.batch_size}.")
    height, width = parse_size(args.input_size, "--input-size")
    existing = [path for path in written_files(args.format, args.out) if path.exists()]
    if existing and not args.overwrite:
        raise InvalidInputError(f"{existing[0]} already exists; pass --overwrite to replace it.")
    model = load_checkpoint(args.checkpoint)
    from spgnet_keras.export.openvino import export_openvino
    from spgnet_keras.export.portable import ParityError, check_parity, export_onnx, export_tflite

    shape = (args.batch_size, height, width, 3)
    try:
        export = {"onnx": export_onnx, "tflite": export_tflite, "openvino": export_openvino}[args.format]
        if args.quantize == "int8":
            return export_int8(model, args, shape, export)
        path = export(model, args.out, shape, output=args.output)
        print(f"{args.format} model written to {path} (input float32 {list(shape)}, RGB 0-255; output logits)")
        if not args.skip_parity_check:
            kwargs = {} if args.min_agreement is None else {"min_agreement": args.min_agreement}
            print(check_parity(model, path, output=args.output, **kwargs))
    except (ImportError, ParityError) as error:
        raise InvalidInputError(str(error)) from error
    return 0


def check_tensorflow_backend(export_format):
    """InvalidInputError for an ONNX / TFLite export on another Keras backend: both convert a
    TensorFlow model (a SavedModel export starts a TensorFlow process itself)."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise InvalidInputError(f"--format {export_format} converts a TensorFlow model, and this is Keras' {backend} "
                                f"backend: run KERAS_BACKEND=tensorflow spgnet export ... --format {export_format}.")


def written_files(export_format, out):
    """The files a fixed-shape export writes: `out`, and for OpenVINO its weights beside it."""
    return [out, out.with_suffix(".bin")] if export_format == "openvino" else [out]


def export_int8(model, args, shape, export):
    """Writes the int8 file with `export` (`export_tflite` / `export_openvino`) and reports how it
    compares with the float model."""
    from spgnet_keras.export.portable import ParityError
    from spgnet_keras.export.quantize import (
        DEFAULT_MIN_INT8_AGREEMENT,
        calibration_images,
        quantization_report,
        validation_pairs,
    )

    calibration = calibration_images(args.calibration, shape[1], shape[2], limit=args.calibration_images)
    path = export(model, args.out, shape, output=args.output, quantize="int8", calibration_images=calibration)
    print(
        f"int8 {args.format} model written to {path} (input float32 {list(shape)}, RGB 0-255; output float32 logits; "
        f"calibrated on {len(calibration)} images of {args.calibration})"
    )
    if args.skip_parity_check and args.validation is None:
        return 0
    validation = validation_pairs(args.validation) if args.validation is not None else None
    report = quantization_report(model, path, calibration, validation, output=args.output)
    print(report)
    minimum = DEFAULT_MIN_INT8_AGREEMENT if args.min_agreement is None else args.min_agreement
    if not args.skip_parity_check and report.agreement < minimum:
        raise ParityError(f"{report}; below the required {100 * minimum:.2f}% (--min-agreement).")
    return 0
