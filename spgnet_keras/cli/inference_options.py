"""What `spgnet predict` and `spgnet evaluate` share: the test-time options and the model."""

from spgnet_keras.constants import PREDICTION
from spgnet_keras.errors import InvalidInputError


def add_inference_arguments(parser):
    """Test-time options shared by `predict` and `evaluate`."""
    parser.add_argument("--scales", type=float, nargs="+", default=None, help="test scales (default 1.0)")
    parser.add_argument(
        "--paper-scales", action="store_true", help="the paper's scales 0.75 1.0 1.25 1.5 1.75 2.0"
    )
    parser.add_argument("--flip", action="store_true", help="average with the horizontally flipped image")
    parser.add_argument("--window", type=int, nargs="+", default=None, help="sliding window: SIZE or H W")
    parser.add_argument("--stride", type=int, nargs="+", default=None, help="sliding-window step: SIZE or H W")
    parser.add_argument("--batch-size", type=int, default=4, help="images/windows per model call")
    parser.add_argument("--output", default=PREDICTION, help="model output to use (prediction, stage1, ...)")


def inference_settings(args):
    """Validated keyword arguments `test_time` (a `TestTimeOptions`) and `output` of
    `predict_logits` / `evaluate` from the shared options."""
    from spgnet_keras.constants import MAX_INFERENCE_BATCH
    from spgnet_keras.inference import PAPER_SCALES
    from spgnet_keras.multiscale import TestTimeOptions, check_window
    from spgnet_keras.scales import check_scales

    if args.paper_scales and args.scales:
        raise InvalidInputError("Give either --scales or --paper-scales, not both.")
    scales = PAPER_SCALES if args.paper_scales else check_scales(args.scales or (1.0,))

    def pair(values, name):
        if values is None:
            return None
        if len(values) not in (1, 2):
            raise InvalidInputError(f"--{name} takes one size or two (height width), got {len(values)} values.")
        return values[0] if len(values) == 1 else tuple(values)

    window, stride = check_window(pair(args.window, "window"), pair(args.stride, "stride"))
    if args.batch_size < 1:
        raise InvalidInputError(f"--batch-size must be positive, got {args.batch_size}.")
    if args.batch_size > MAX_INFERENCE_BATCH:
        raise InvalidInputError(f"--batch-size must be at most {MAX_INFERENCE_BATCH}, got {args.batch_size}.")
    test_time = TestTimeOptions(scales=scales, flip=args.flip, window=window, stride=stride,
                                batch_size=args.batch_size)
    return dict(test_time=test_time, output=args.output)


def load_spgnet(path):
    """The SPGNet saved in `path` (`--model`); ValueError naming the file for anything else,
    e.g. a plain Keras classifier, before it is given an image."""
    from spgnet_keras.models.checkpoints import read_saved_model
    from spgnet_keras.models.spgnet import SPGNet

    model = read_saved_model(path, "model")
    if not isinstance(model, SPGNet):
        raise InvalidInputError(
            f"--model {path} holds a {type(model).__name__} named {model.name!r}, not an SPGNet; "
            "give a model saved from spgnet_keras.SPGNet (e.g. runs/<name>/checkpoints/best.keras)."
        )
    return model
