"""The `spgnet` command: train | evaluate | predict | export | profile | demo.

Each subcommand lives in its own module exposing `add_parser(subparsers)`, which
registers the parser and sets `func` to the function that runs it.
"""

import argparse
import importlib
import os
import sys

SUBCOMMANDS = ("train", "evaluate", "predict", "export", "profile", "demo")


class CommandError(Exception):
    """A user error reported as one line, exit code 2 (no traceback)."""


def build_parser():
    parser = argparse.ArgumentParser(prog="spgnet", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"spgnet_keras.cli.{name}_command")
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    from spgnet_keras.callbacks import TrainingDivergedError

    try:
        return args.func(args) or 0
    except (CommandError, ValueError, OSError, TrainingDivergedError) as error:  # one line, exit 2
        print(f"spgnet {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
