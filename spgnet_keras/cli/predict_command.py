"""`spgnet predict`: segment images; write class-index PNGs, colour PNGs and overlays.

Output layout under ``--out DIR`` (``<stem>`` = input file name without suffix):

* ``labels/<stem>.png``: 8-bit class indices.
* ``color/<stem>.png``: classes coloured with the palette.
* ``overlay/<stem>.png``: colours blended over the image (``--alpha``).
* with ``--cityscapes-results``: ``cityscapes_results/<city>/<stem>.png`` label-id PNGs in
  the Cityscapes benchmark layout (train ids mapped back to label ids).
* with ``--attention CLASS ...``: ``attention/<stem>.png``, guided-attention heat maps of
  those classes (paper Sec 4.5).

No existing file is replaced unless ``--overwrite`` is given, and a folder that holds a
dataset split (``images/`` beside ``labels/``) or a dataset root (``meta.json``) is never
used as ``--out``: its ``labels/`` are ground-truth masks.
"""

from pathlib import Path


def add_parser(subparsers):
    parser = subparsers.add_parser("predict", help="segment images with a saved model")
    parser.add_argument("images", nargs="+", help="image files and/or folders of images")
    parser.add_argument("--model", required=True, type=Path, help="saved .keras model")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace prediction files that already exist")
    parser.add_argument(
        "--palette", default=None, help="camvid | cityscapes | palette file (JSON / meta.json / 'r g b' lines)"
    )
    add_inference_arguments(parser)
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the colours (0..1)")
    parser.add_argument(
        "--cityscapes-results",
        action="store_true",
        help="also write Cityscapes label-id PNGs (benchmark layout) to OUT/cityscapes_results",
    )
    parser.add_argument(
        "--attention",
        nargs="+",
        default=None,
        metavar="CLASS",
        help="also write guided-attention figures for these classes (indices, or names with a named palette)",
    )
    parser.set_defaults(func=run)


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
    parser.add_argument("--output", default="prediction", help="model output to use (prediction, stage1, ...)")


def inference_settings(args):
    """Validated keyword arguments for `predict_logits` from the shared options."""
    from spgnet_keras.inference import PAPER_SCALES, check_scales, check_window

    if args.paper_scales and args.scales:
        raise ValueError("Give either --scales or --paper-scales, not both.")
    scales = PAPER_SCALES if args.paper_scales else check_scales(args.scales or (1.0,))

    def pair(values, name):
        if values is None:
            return None
        if len(values) not in (1, 2):
            raise ValueError(f"--{name} takes one size or two (height width), got {len(values)} values.")
        return values[0] if len(values) == 1 else tuple(values)

    window, stride = check_window(pair(args.window, "window"), pair(args.stride, "stride"))
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}.")
    return dict(scales=scales, flip=args.flip, window=window, stride=stride, output=args.output,
                batch_size=args.batch_size)


def output_classes(model, output):
    outputs = model.output
    tensor = outputs[output] if isinstance(outputs, dict) and output in outputs else outputs
    if isinstance(tensor, dict):
        raise ValueError(f"Model has no output {output!r}; outputs are {sorted(outputs)}.")
    return int(tensor.shape[-1])


def palette_class_names(palette):
    """Class names implied by --palette (camvid, cityscapes, or a meta.json with 'classes')."""
    import json

    if palette is None:
        return None
    if palette.lower() == "camvid":
        from spgnet_keras.data.datasets import CAMVID_SPEC

        return list(CAMVID_SPEC.class_names)
    if palette.lower() == "cityscapes":
        from spgnet_keras.data.cityscapes import CITYSCAPES_CLASSES

        return list(CITYSCAPES_CLASSES)
    path = Path(palette)
    if path.suffix.lower() == ".json" and path.is_file():
        content = json.loads(path.read_text())
        if isinstance(content, dict) and "classes" in content:
            return list(content["classes"])
    return None


def check_output_folder(out, targets, overwrite):
    """ValueError when `out` is a dataset's folder, or (without `overwrite`) when one of
    `targets` already exists: predictions never replace masks or earlier results silently."""
    if (out / "images").is_dir() and (out / "labels").is_dir() or (out / "meta.json").is_file():
        raise ValueError(
            f"--out {out} holds a dataset (images/ and labels/, or meta.json): predictions would "
            "replace its ground-truth masks. Choose another output folder."
        )
    existing = [path for path in targets if path.exists()]
    if existing and not overwrite:
        raise ValueError(
            f"{len(existing)} output file(s) already exist, e.g. {existing[0]}; pass --overwrite to replace "
            "them or choose another --out."
        )


def output_files(out, files, attention, cityscapes):
    """Every file `spgnet predict` will write for `files`."""
    from spgnet_keras.evaluation import cityscapes_result_path

    folders = ["labels", "color", "overlay"] + (["attention"] if attention else [])
    targets = [out / folder / f"{path.stem}.png" for path in files for folder in folders]
    if cityscapes:
        targets += [cityscapes_result_path(out / "cityscapes_results", path) for path in files]
    return targets


def run(args):
    import numpy as np
    from PIL import Image

    from spgnet_keras.inference import check_image_file, list_images, load_image, load_model, predict
    from spgnet_keras.visualization import (
        attention_figure,
        colorize,
        guided_attention_maps,
        overlay,
        resolve_palette,
        save_figure,
    )

    settings = inference_settings(args)
    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1], got {args.alpha}.")
    files = list_images(args.images)
    stems = {}
    for path in files:
        if path.stem in stems:
            raise ValueError(f"Two inputs share the name {path.stem!r}: {stems[path.stem]} and {path}.")
        stems[path.stem] = path
    if args.cityscapes_results:
        from spgnet_keras.evaluation import cityscapes_result_path

        for path in files:  # fail before any work if a name cannot be placed
            cityscapes_result_path(args.out, path)
    check_output_folder(args.out, output_files(args.out, files, args.attention, args.cityscapes_results),
                        args.overwrite)
    for path in files:  # unreadable inputs fail before the model is loaded
        check_image_file(path)
    if args.palette is not None:
        resolve_palette(args.palette)
    model = load_model(args.model)
    num_classes = output_classes(model, args.output)
    palette = resolve_palette(args.palette, num_classes)
    class_names = palette_class_names(args.palette)
    if class_names is None and args.cityscapes_results:
        from spgnet_keras.data.cityscapes import CITYSCAPES_CLASSES

        class_names = list(CITYSCAPES_CLASSES)
    attention_classes = None
    if args.attention:
        attention_classes = [int(c) if c.lstrip("-").isdigit() else c for c in args.attention]
    if args.cityscapes_results:
        from spgnet_keras.evaluation import CityscapesResultWriter

        if num_classes != 19:
            raise ValueError(f"--cityscapes-results needs a 19-class (train id) model, this one has {num_classes}.")
        writer = CityscapesResultWriter(args.out / "cityscapes_results")

    for number, path in enumerate(files, 1):
        image = load_image(path)
        prediction = predict(model, image, **settings)
        if prediction.max(initial=0) > 255:
            raise ValueError("More than 256 classes do not fit an 8-bit PNG.")
        for folder, array in (
            ("labels", prediction.astype(np.uint8)),
            ("color", colorize(prediction, palette)),
            ("overlay", overlay(image, prediction, palette, args.alpha)),
        ):
            (args.out / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(args.out / folder / f"{path.stem}.png")
        if args.cityscapes_results:
            writer(prediction, path)
        if attention_classes:
            maps = guided_attention_maps(model, image, attention_classes, class_names=class_names)
            titles = [
                c if isinstance(c, str) else (class_names[c] if class_names else f"class {c}")
                for c in attention_classes
            ]
            figure = attention_figure(image, maps, titles, predictions=prediction, palette=palette)
            save_figure(figure, args.out / "attention" / f"{path.stem}.png")
        print(f"[{number}/{len(files)}] {path} -> {args.out / 'labels' / (path.stem + '.png')}")
