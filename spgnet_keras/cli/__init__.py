"""The `spgnet` command: train | evaluate | predict | export | profile | demo.

Each subcommand lives in its own module exposing `add_parser(subparsers)`, which
registers the parser and sets `func` to the function that runs it.

The console script starts in `spgnet_launcher.main`, which silences TensorFlow's start-up
logging (set TF_CPP_MIN_LOG_LEVEL yourself, e.g. to 0, to see it).
"""

import argparse
import importlib
import os
import sys
from pathlib import Path

from spgnet_keras.errors import SPGNetError

SUBCOMMANDS = ("train", "evaluate", "predict", "export", "profile", "demo")


class CommandError(SPGNetError):
    """A user error reported as one line, exit code 2 (no traceback)."""


def build_parser():
    parser = argparse.ArgumentParser(prog="spgnet", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"spgnet_keras.cli.{name}_command")
        module.add_parser(subparsers)
    return parser


def printable_path(path):
    """`path` with bytes that are not UTF-8 shown as \\xNN escapes (safe to print)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def check_utf8_path(path, what):
    """CommandError for a file name whose bytes are not UTF-8 (on Linux, Python keeps them as
    surrogates: they cannot be printed, written to JSON or logged reliably)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise CommandError(
            f"{what} {printable_path(path)}: the name is not valid UTF-8 (undecodable bytes shown as \\xNN); "
            "rename it and try again."
        ) from None


def check_utf8_arguments(args):
    """`check_utf8_path` for every path-like or text argument of the command line."""
    for name, value in vars(args).items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, (str, Path)):
                positional = name == "images" and getattr(args, "command", None) == "predict"
                option = "input" if positional else f"--{name.replace('_', '-')}"
                check_utf8_path(item, option)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        check_utf8_arguments(args)
        return args.func(args) or 0
    except (SPGNetError, OSError) as error:  # the package's own errors: one line, exit 2; a bug keeps its traceback
        print(f"spgnet {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
