"""`spgnet demo`: train + evaluate + export + figures on bundled SYNTHETIC scenes (or --data)."""


def add_parser(subparsers):
    parser = subparsers.add_parser("demo", help="the main job: a few minutes on a CPU, no download")
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--data", default=None, help="root of a real dataset instead of the synthetic scenes")
    parser.add_argument("--dataset", default=None, choices=["camvid", "cityscapes", "folder"],
                        help="layout of --data (default camvid)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--train-images", type=int, default=None, help="synthetic training images")
    parser.add_argument("--val-images", type=int, default=None, help="synthetic validation images")
    parser.set_defaults(func=run)


def run(args):
    from spgnet_keras.demo import DEMO_TRAIN_IMAGES, DEMO_VAL_IMAGES, run_demo

    if args.dataset and not args.data:
        raise ValueError("--dataset needs --data ROOT.")
    dataset = (args.dataset or "camvid") if args.data else "synthetic"
    run_demo(
        out_dir=args.out,
        dataset=dataset,
        data_root=args.data,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        num_train=DEMO_TRAIN_IMAGES if args.train_images is None else args.train_images,
        num_val=DEMO_VAL_IMAGES if args.val_images is None else args.val_images,
    )
