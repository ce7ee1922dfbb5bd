"""`spgnet export`: a trained checkpoint as a TF Serving SavedModel, ONNX or TFLite file.

    spgnet export runs/best.keras --out models/spgnet/1
    spgnet export runs/best.keras --out models/spgnet/2 --scales 0.75,1,1.25 --flip --probabilities
    spgnet export runs/best.keras --format onnx --out spgnet.onnx --input-size 512x1024
"""

from pathlib import Path

FORMATS = ("saved_model", "onnx", "tflite")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint for serving (TF Serving SavedModel, ONNX, TFLite)",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("checkpoint", type=Path, help="trained model (.keras)")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="saved_model: the version folder BASE/MODEL_NAME/VERSION (numeric VERSION, as TF Serving "
        "expects); onnx / tflite: the .onnx / .tflite file",
    )
    parser.add_argument("--format", choices=FORMATS, default="saved_model", help="what to write (default saved_model)")
    parser.add_argument("--output", default="prediction", help="model output to serve: prediction (last stage), stage1, ...")
    parser.add_argument("--scales", default="1", help="saved_model: comma-separated test-time scales, e.g. 0.75,1,1.25")
    parser.add_argument("--flip", action="store_true", help="saved_model: also average over horizontal flips")
    parser.add_argument(
        "--output-size", default="original", help='saved_model: "original" or HEIGHTxWIDTH of the served class map'
    )
    parser.add_argument("--probabilities", action="store_true", help="saved_model: also return softmax probabilities")
    parser.add_argument("--max-pixels", type=int, default=None, help="saved_model: largest height*width accepted")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version folder / file")
    parser.add_argument("--input-size", default=None, help="onnx / tflite: fixed HEIGHTxWIDTH (multiples of 32)")
    parser.add_argument("--batch-size", type=int, default=1, help="onnx / tflite: fixed batch size (default 1)")
    parser.add_argument(
        "--skip-parity-check", action="store_true", help="onnx / tflite: do not compare the file with Keras"
    )
    parser.set_defaults(func=run)


def parse_size(text, option):
    """'512x1024' -> (512, 1024)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        height, width = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"{option} must be HEIGHTxWIDTH (e.g. 512x1024), got {text!r}.") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"{option} must be positive, got {text!r}.")
    return height, width


def parse_scales(text):
    try:
        scales = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--scales must be comma-separated numbers (e.g. 0.75,1,1.25), got {text!r}.") from None
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"--scales must be positive numbers, got {text!r}.")
    return scales


def load_checkpoint(path):
    if not path.exists():
        raise FileNotFoundError(f"Checkpoint {path} does not exist.")
    if path.suffix != ".keras":
        raise ValueError(f"The checkpoint must be a .keras file, got {str(path)!r}.")
    import keras

    import spgnet_keras  # noqa: F401  (registers the custom layers)

    return keras.saving.load_model(path, compile=False)


def run(args):
    if args.format == "saved_model":
        scales = parse_scales(args.scales)
        output_size = "original" if args.output_size == "original" else parse_size(args.output_size, "--output-size")
        if args.input_size is not None:
            raise ValueError("--input-size is for --format onnx / tflite; a SavedModel takes any size.")
        from spgnet_keras.export import DEFAULT_MAX_PIXELS, export_saved_model
        from spgnet_keras.export.saved_model import check_version_dir

        check_version_dir(args.out)  # fail before the (slow) checkpoint load
        if args.out.exists() and not args.overwrite:
            raise ValueError(f"Export folder {args.out} already exists; pass --overwrite to replace it.")
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
            overwrite=args.overwrite,
        )
        print(f"SavedModel written to {path} (signatures serving_default, predict_images, predict_images_float)")
        return 0

    if args.input_size is None:
        raise ValueError(f"--format {args.format} needs --input-size HEIGHTxWIDTH (a fixed shape).")
    if args.scales != "1" or args.flip or args.output_size != "original" or args.probabilities:
        raise ValueError("--scales / --flip / --output-size / --probabilities only apply to --format saved_model.")
    if args.batch_size <= 0:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}.")
    height, width = parse_size(args.input_size, "--input-size")
    if args.out.exists() and not args.overwrite:
        raise ValueError(f"{args.out} already exists; pass --overwrite to replace it.")
    model = load_checkpoint(args.checkpoint)
    from spgnet_keras.export.portable import ParityError, check_parity, export_onnx, export_tflite

    export = export_onnx if args.format == "onnx" else export_tflite
    shape = (args.batch_size, height, width, 3)
    try:
        path = export(model, args.out, shape, output=args.output)
        print(f"{args.format} model written to {path} (input float32 {list(shape)}, RGB 0-255; output logits)")
        if not args.skip_parity_check:
            print(check_parity(model, path, output=args.output))
    except (ImportError, ParityError) as error:
        raise ValueError(str(error)) from error
    return 0
