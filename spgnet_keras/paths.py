"""File names the package can carry: UTF-8 names only, shown safely when they are not.

On Linux a name is bytes; Python keeps bytes that are not UTF-8 as surrogates, which
TensorFlow cannot take ("Error converting unicode string"), JSON, logs and the report
cannot write reliably. One rule for the command line, the dataset folders and the
inference folders: such a name is refused, naming the file with its bytes as `\\xNN`.
"""

from __future__ import annotations

import os

from spgnet_keras.errors import InvalidInputError


def printable_path(path) -> str:
    """`path` with bytes that are not UTF-8 shown as \\xNN escapes (safe to print)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_utf8_path(path) -> bool:
    """Whether the name `path` is valid UTF-8 (no undecodable bytes kept as surrogates)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_utf8_path(path, what: str) -> None:
    """InvalidInputError naming `path` (escaped) when its name is not valid UTF-8.

    Args:
        path: A file or folder name (str or path-like).
        what: What it is, to start the message (e.g. "input", "--out", "dataset file").
    """
    if not is_utf8_path(path):
        raise InvalidInputError(
            f"{what} {printable_path(path)}: the name is not valid UTF-8 (undecodable bytes shown as \\xNN); "
            "rename it and try again."
        )
