"""`spgnet evaluate`: mIoU / per-class IoU / pixel accuracy of a saved model on full images: a
dataset split, your folders as they are, or the validation data its run recorded."""

from pathlib import Path

from spgnet_keras.cli.config_options import add_data_flags, add_set_option
from spgnet_keras.cli.inference_options import add_inference_arguments, inference_settings, load_spgnet
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.paths import check_utf8_path


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a saved model on a dataset split or your folders",
        description="Evaluate a saved SPGNet. Data: --data ROOT --dataset NAME, your folders as they are "
                    "(--images DIR --masks DIR, with the naming options of spgnet train), or nothing for a "
                    "model inside a run folder (RUN/checkpoints/*.keras): the run's validation data (RUN/data.json).")
    parser.add_argument("--model", required=True, type=Path, help="saved .keras model")
    add_data_flags(parser, evaluation=True)
    add_set_option(parser)
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
    parser.add_argument("--overwrite", action="store_true",
                        help="replace prediction files (--predictions) that already exist")
    parser.add_argument("--confusion-plot", type=Path, default=None, help="save a confusion-matrix figure here")
    parser.add_argument("--report", type=Path, default=None, metavar="DIR",
                        help="write a browsable report here (DIR/index.html: scores, confusion matrix, worst and "
                        "best images, guided attention, the run's training curves; opens from disk)")
    parser.add_argument("--quiet", action="store_true", help="no per-image progress")
    parser.set_defaults(func=run)


def run_folder_of(model_path):
    """The run folder of a model saved by `spgnet train` (RUN/checkpoints/<name>.keras), if it recorded its data."""
    from spgnet_keras.data.sources import DATA_RECORD

    run_dir = Path(model_path).resolve().parent.parent
    return run_dir if Path(model_path).resolve().parent.name == "checkpoints" and (run_dir / DATA_RECORD).is_file() \
        else None


def evaluation_data(args):
    """(ResolvedData, where it comes from): the flags' data, or the run's recorded validation data."""
    from spgnet_keras.cli.config_options import assignments_of, config_from_flags
    from spgnet_keras.config import ExperimentConfig
    from spgnet_keras.data.sources import DATA_RECORD, read_data_record
    from spgnet_keras.training import resolve_config_data

    if assignments_of(args):
        base = ExperimentConfig()
        base.data.dataset = "camvid"
        config = config_from_flags(args, base)
        return resolve_config_data(config.data, splits="val"), "the command line"
    run_dir = run_folder_of(args.model)
    if run_dir is None:
        raise InvalidInputError(
            "Say what to evaluate on: --data ROOT --dataset NAME, or your folders (--images DIR --masks DIR); "
            f"a model inside a run folder (RUN/checkpoints/*.keras with RUN/{DATA_RECORD}) needs neither.")
    resolved, _ = read_data_record(run_dir / DATA_RECORD)
    return resolved, str(run_dir / DATA_RECORD)


def run(args):
    import sys

    from spgnet_keras.evaluation import evaluate_data, format_table, to_json
    from spgnet_keras.output_files import check_output_targets
    from spgnet_keras.prediction_files import prediction_writer_for

    settings = inference_settings(args)
    if args.max_images is not None and args.max_images < 1:
        raise InvalidInputError(f"--max-images must be positive, got {args.max_images}.")
    data, source = evaluation_data(args)  # dataset errors before loading the model
    for pair in data.val_pairs:
        for path in pair:
            check_utf8_path(path, "dataset file")
    pairs = data.val_pairs if args.max_images is None else data.val_pairs[: args.max_images]
    writer = None if args.predictions is None else prediction_writer_for(
        args.predictions, pairs, cityscapes=data.dataset == "cityscapes", overwrite=args.overwrite,
        option="--predictions")
    if args.report is not None:
        check_output_targets(args.report, [], overwrite=True, protected=[path for pair in pairs for path in pair],
                             option="--report")
    model = load_spgnet(args.model)
    if not args.quiet:
        print(f"evaluating {len(data.val_pairs)} images ({data.val_source}; data from {source})", file=sys.stderr)

    def progress(done, path):
        if not args.quiet:
            print(f"\r{done} images evaluated", end="", file=sys.stderr, flush=True)

    result = evaluate_data(
        model,
        data,
        prediction_writer=writer,
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
    if args.report is not None:
        from spgnet_keras.visualization import write_report

        page = write_report(result, args.report, model=model, data=data, run_dir=run_folder_of(args.model))
        print(f"wrote {page}")
