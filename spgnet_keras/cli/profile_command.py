"""`spgnet profile`: params and MACs of the paper's configurations beside its tables."""

from pathlib import Path

from spgnet_keras.errors import InvalidInputError


def add_parser(subparsers):
    parser = subparsers.add_parser("profile", help="params / MACs table next to the paper's numbers")
    parser.add_argument("--height", type=int, default=1025, help="input height (paper counts at 1025)")
    parser.add_argument("--width", type=int, default=2049, help="input width (paper counts at 2049)")
    parser.add_argument("--rows", default=None, help="only rows whose label contains this text")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    parser.set_defaults(func=run)


def run(args):
    from spgnet_keras.inference import check_image_size
    from spgnet_keras.profiler import PAPER_ROWS, format_table, paper_table

    rows = [r for r in PAPER_ROWS if args.rows is None or args.rows in r.label]
    if not rows:
        raise InvalidInputError(f"No paper row matches --rows {args.rows!r}.")
    if args.height < 1 or args.width < 1:
        raise InvalidInputError(f"--height and --width must be positive, got {args.height}x{args.width}.")
    check_image_size(args.height, args.width, "--height x --width")
    size = (args.height, args.width)
    table = format_table(paper_table(size=size, rows=rows), size)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")
