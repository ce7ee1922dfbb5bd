"""`spgnet predict`: segment images; write class-index PNGs, colour PNGs and overlays.

Output layout under `--out DIR` (`<stem>` = input file name without suffix):

* `labels/<stem>.png`: 8-bit class indices.
* `color/<stem>.png`: classes coloured with the palette.
* `overlay/<stem>.png`: colours blended over the image (`--alpha`).
* with `--cityscapes-results`: `cityscapes_results/<city>/<stem>.png` label-id PNGs in
  the Cityscapes benchmark layout (train ids mapped back to label ids).
* with `--attention CLASS ...`: `attention/<stem>.png`, guided-attention heat maps of
  those classes (paper Sec 4.5).

No existing file is replaced unless `--overwrite` is given, and a folder that holds a
dataset split (`images/` beside `labels/`) or a dataset root (`meta.json`) is never
used as `--out`: its `labels/` are ground-truth masks.
"""

from pathlib import Path

from spgnet_keras.cli.inference_options import add_inference_arguments, inference_settings, load_spgnet
from spgnet_keras.errors import InvalidInputError


def add_parser(subparsers):
    parser = subparsers.add_parser("predict", help="segment images with a saved model")
    parser.add_argument("images", nargs="+", help="image files and/or folders of images")
    parser.add_argument("--model", required=True, type=Path, help="saved .keras model")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace prediction files that already exist")
    parser.add_argument(
        "--palette", default=None,
        help="camvid | cityscapes | palette file (JSON / meta.json / 'r g b' lines); default: the model's own "
        "colours (a trained model keeps its classes), else a generic palette"
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


def check_attention_model(model, path, classes, class_names):
    """ValueError, before any image is processed, unless `model` has an SPG module for
    --attention (two or more stages, guidance="spg"; paper Sec 4.5) and knows `classes`."""
    from spgnet_keras.visualization import TOP_K, _class_indices

    stages = len(model.stage_backbones)
    if stages < 2:
        raise InvalidInputError(
            f"--attention needs a model of two or more stages (guided attention is the SPG module between "
            f"stages, paper Sec 4.5); --model {path} has {stages} stage."
        )
    if model.guidance != "spg":
        raise InvalidInputError(f"--attention needs guidance='spg'; --model {path} uses guidance={model.guidance!r}.")
    if model.decoder_channels < TOP_K:
        raise InvalidInputError(f"--attention shows the {TOP_K} strongest attention channels of a class (paper Sec 4.5); "
                         f"--model {path} has {model.decoder_channels} decoder channels.")
    try:
        _class_indices(classes, class_names, model.num_classes)
    except ValueError as error:
        raise InvalidInputError(f"--attention: {error}") from None


def check_image_sizes(files, settings):
    """ValueError naming the file when an input, or one of its scaled copies, is beyond the
    size limits of `spgnet_keras.constants` (read from the headers, before the model loads)."""
    from PIL import Image

    from spgnet_keras.inference import check_workload

    for path in files:
        with Image.open(path) as image:
            width, height = image.size
        try:
            test_time = settings["test_time"]
            check_workload(height, width, test_time.scales, test_time.window, test_time.stride)
        except ValueError as error:
            raise InvalidInputError(f"{path}: {error}") from None


def output_classes(model, output):
    outputs = model.output
    tensor = outputs[output] if isinstance(outputs, dict) and output in outputs else outputs
    if isinstance(tensor, dict):
        raise InvalidInputError(f"Model has no output {output!r}; outputs are {sorted(outputs)}.")
    return int(tensor.shape[-1])


def palette_class_names(palette):
    """Class names implied by --palette (camvid, cityscapes, or a meta.json with 'classes')."""
    import json

    if palette is None:
        return None
    from spgnet_keras.data.registry import builtin_spec

    spec = builtin_spec(palette)
    if spec is not None:
        return list(spec.class_names)
    path = Path(palette)
    if path.suffix.lower() == ".json" and path.is_file():
        content = json.loads(path.read_text())
        if isinstance(content, dict) and "classes" in content:
            return list(content["classes"])
    return None


def output_files(out, files, attention, cityscapes):
    """Every file `spgnet predict` will write for `files`."""
    from spgnet_keras.evaluation import cityscapes_result_path

    folders = ["labels", "color", "overlay"] + (["attention"] if attention else [])
    targets = [out / folder / f"{path.stem}.png" for path in files for folder in folders]
    if cityscapes:
        targets += [cityscapes_result_path(out / "cityscapes_results", path) for path in files]
    return targets


def run(args):
    from PIL import Image

    from spgnet_keras.data import list_images, load_image
    from spgnet_keras.data.decoding import check_image_file, save_label
    from spgnet_keras.inference import predict
    from spgnet_keras.output_files import check_output_targets
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
        raise InvalidInputError(f"--alpha must be in [0, 1], got {args.alpha}.")
    files = list_images(args.images)  # refuses names in folders that are not UTF-8 (main() checked the command line)
    stems = {}
    for path in files:
        if path.stem in stems:
            raise InvalidInputError(f"Two inputs share the name {path.stem!r}: {stems[path.stem]} and {path}.")
        stems[path.stem] = path
    if args.cityscapes_results:
        from spgnet_keras.evaluation import cityscapes_result_path

        for path in files:  # fail before any work if a name cannot be placed
            cityscapes_result_path(args.out, path)
    check_output_targets(args.out, output_files(args.out, files, args.attention, args.cityscapes_results),
                         overwrite=args.overwrite, protected=files)
    for path in files:  # unreadable inputs fail before the model is loaded
        check_image_file(path)
    check_image_sizes(files, settings)
    if args.palette is not None:
        resolve_palette(args.palette)
    model = load_spgnet(args.model)
    num_classes = output_classes(model, args.output)
    # The model's own classes and colours (kept in its config by training) unless --palette says otherwise.
    palette = resolve_palette(args.palette if args.palette is not None else model.palette, num_classes)
    class_names = palette_class_names(args.palette) if args.palette is not None else model.class_names
    if class_names is None and args.cityscapes_results:
        from spgnet_keras.data.cityscapes import CITYSCAPES_CLASSES

        class_names = list(CITYSCAPES_CLASSES)
    attention_classes = None
    if args.attention:
        attention_classes = [int(c) if c.lstrip("-").isdigit() else c for c in args.attention]
        check_attention_model(model, args.model, attention_classes, class_names)
    if args.cityscapes_results:
        from spgnet_keras.evaluation import CityscapesResultWriter

        if num_classes != 19:
            raise InvalidInputError(f"--cityscapes-results needs a 19-class (train id) model, this one has {num_classes}.")
        writer = CityscapesResultWriter(args.out / "cityscapes_results")

    for number, path in enumerate(files, 1):
        image = load_image(path)
        prediction = predict(model, image, **settings)
        save_label(args.out / "labels" / f"{path.stem}.png", prediction)
        for folder, array in (
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
