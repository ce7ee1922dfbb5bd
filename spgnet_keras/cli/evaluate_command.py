"""`spgnet evaluate`: mIoU / per-class IoU / pixel accuracy of a saved model on full images."""

from pathlib import Path

from spgnet_keras.cli import check_utf8_path
from spgnet_keras.cli.inference_options import add_inference_arguments, inference_settings, load_spgnet


def add_parser(subparsers):
    parser = subparsers.add_parser("evaluate", help="evaluate a saved model on a dataset split")
    parser.add_argument("--model", required=True, type=Path, help="saved .keras model")
    parser.add_argument("--data", required=True, type=Path, help="dataset root folder")
    parser.add_argument(
        "--dataset",
        required=True,
        choices=("camvid", "cityscapes", "folder"),
        help="layout: camvid/folder = ROOT/<split>/{images,labels} (folder also ROOT/{images,labels}), "
        "cityscapes = ROOT/{leftImg8bit,gtFine}/<split>/<city>",
    )
    parser.add_argument("--split", default="val", help="split to evaluate (default val)")
    add_inference_arguments(parser)
    parser.add_argument("--max-images", type=int, default=None, help="evaluate only the first N images")
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    parser.add_argument(
        "--predictions",
        type=Path,
        default=None,
        help="write predictions here (Cityscapes: label-id PNGs in the benchmark layout, "
        "usable as CITYSCAPES_RESULTS; others: class-index PNGs)",
    )
    parser.add_argument("--confusion-plot", type=Path, default=None, help="save a confusion-matrix figure here")
    parser.add_argument("--quiet", action="store_true", help="no per-image progress")
    parser.set_defaults(func=run)


def run(args):
    import sys

    from spgnet_keras.evaluation import dataset_pairs, evaluate_dataset, format_table, to_json

    settings = inference_settings(args)
    if args.max_images is not None and args.max_images < 1:
        raise ValueError(f"--max-images must be positive, got {args.max_images}.")
    for pair in dataset_pairs(args.dataset, args.data, args.split):  # dataset errors before loading the model
        for path in pair:
            check_utf8_path(path, "dataset file")
    model = load_spgnet(args.model)

    def progress(done, path):
        if not args.quiet:
            print(f"\r{done} images evaluated", end="", file=sys.stderr, flush=True)

    result = evaluate_dataset(
        model,
        args.dataset,
        args.data,
        split=args.split,
        predictions_dir=args.predictions,
        max_images=args.max_images,
        progress=progress,
        **settings,
    )
    if not args.quiet:
        print(file=sys.stderr)
    result.settings["model"] = str(args.model)
    print(format_table(result))
    if args.json is not None:
        to_json(result, args.json)
        print(f"wrote {args.json}")
    if args.confusion_plot is not None:
        from spgnet_keras.visualization import plot_confusion_matrix, save_figure

        save_figure(plot_confusion_matrix(result.confusion, result.class_names), args.confusion_plot)
        print(f"wrote {args.confusion_plot}")
