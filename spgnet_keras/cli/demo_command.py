"""`spgnet demo`: train + evaluate + export + figures in one command, on bundled SYNTHETIC scenes,
a named dataset (--data ROOT --dataset NAME) or your folders as they are (--images DIR --masks DIR),
with the data and run options of `spgnet train`."""

from pathlib import Path

from spgnet_keras.cli.config_options import add_data_flags, add_run_flags, assignments_of, config_from_flags
from spgnet_keras.errors import InvalidInputError


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "demo", help="the main job: train, evaluate, export and draw (a few minutes on a CPU, no download)",
        description="Train, evaluate, export (TF Serving SavedModel) and draw in one command: on SYNTHETIC scenes "
                    "by default (output in runs/demo), or on real data given with the data options of spgnet train "
                    "(the CamVid CPU recipe).")
    parser.add_argument("--synthetic-train", type=int, default=None, help="synthetic training images")
    parser.add_argument("--synthetic-val", type=int, default=None, help="synthetic validation images")
    add_data_flags(parser)
    add_run_flags(parser)
    parser.set_defaults(func=run)


def run(args):
    from spgnet_keras.demo import DEMO_TRAIN_IMAGES, DEMO_VAL_IMAGES, demo_config, run_demo

    data_given = any(section == "data" and key not in ("batch_size", "crop_size")
                     for section, key, *_ in assignments_of(args))
    if data_given and (args.synthetic_train is not None or args.synthetic_val is not None):
        raise InvalidInputError("--synthetic-train and --synthetic-val are for the synthetic scenes; your data has its own.")
    dataset = (args.dataset or ("folder" if args.images else "camvid")) if data_given else "synthetic"
    config = demo_config("runs/demo", dataset)  # the recipe of that kind of data (e.g. Cityscapes crops)
    if data_given:
        config.data.root = None
    config = config_from_flags(args, config)
    if data_given and config.data.root is None and config.data.dataset != "folder":
        raise InvalidInputError("--dataset needs --data ROOT.")
    if config.data.dataset == "synthetic" and not data_given:
        config.data.root = str(Path(config.run.out_dir) / "data")
    run_demo(
        config=config,
        num_train=DEMO_TRAIN_IMAGES if args.synthetic_train is None else args.synthetic_train,
        num_val=DEMO_VAL_IMAGES if args.synthetic_val is None else args.synthetic_val,
    )
