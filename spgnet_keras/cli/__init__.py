"""The `spgnet` command: train | evaluate | predict | export | profile | demo.

Each subcommand lives in its own module exposing `add_parser(subparsers)`, which
registers the parser and sets `func` to the function that runs it.

The console script starts in `spgnet_launcher.main`, which silences TensorFlow's start-up
logging (set TF_CPP_MIN_LOG_LEVEL yourself, e.g. to 0, to see it).
"""

import argparse
import importlib
import sys
import warnings
from pathlib import Path

from spgnet_keras.errors import SPGNetError
from spgnet_keras.paths import check_utf8_path, printable_path

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


def error_line(error: Exception) -> str:
    """The one line an error is reported as: a system error (an `OSError` with its errno) as
    "<file>: <cause>", e.g. "…/run/.spgnet-lock: Read-only file system"; others as their message."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        names = [error.filename] + ([error.filename2] if error.filename2 is not None else [])
        return f"{' -> '.join(printable_path(name) for name in names)}: {error.strerror}"
    return str(error)


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
    with warnings.catch_warnings():  # the package's warnings as one line each (restored on return)
        warnings.showwarning = lambda message, category, *_: print(
            f"spgnet {args.command}: warning: {message}", file=sys.stderr)
        return run_command(args)


def run_command(args) -> int:
    """Runs the parsed command; its refusals and system errors as one line, exit code 2."""
    try:
        check_utf8_arguments(args)
        return args.func(args) or 0
    except (SPGNetError, OSError) as error:  # the package's own errors: one line, exit 2; a bug keeps its traceback
        print(f"spgnet {args.command}: error: {error_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
