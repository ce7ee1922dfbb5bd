"""The one rule for commands that write image files: never over a dataset, never over a file
without `overwrite`.

`spgnet predict --out`, `spgnet evaluate --predictions` and `evaluate(..., predictions_dir=)`
all check their output folder with `check_output_targets` before the model is loaded, so a
folder that holds ground truth is refused before anything is written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from spgnet_keras.errors import InvalidInputError

# How many folders above the output folder are searched for a dataset's marks.
DATASET_SEARCH_DEPTH = 2


def dataset_mark(folder) -> str | None:
    """Why `folder` belongs to a dataset, or None: it, or a folder up to `DATASET_SEARCH_DEPTH`
    levels above it, holds `images/` beside `labels/` (a split: `ROOT/val/labels` is inside
    one), or it holds a `meta.json` (a dataset root)."""
    folder = Path(os.path.abspath(folder))
    if (folder / "meta.json").is_file():
        return f"{folder} is a dataset root (meta.json)"
    for candidate in [folder, *folder.parents][: DATASET_SEARCH_DEPTH + 1]:
        if (candidate / "images").is_dir() and (candidate / "labels").is_dir():
            return f"{candidate} is a dataset split (images/ beside labels/)"
    return None


def check_output_targets(out_dir, targets: Iterable, *, overwrite: bool = False, protected: Iterable = (),
                         option: str = "--out") -> None:
    """Refuses to write `targets` into `out_dir` when that could destroy data.

    Args:
        out_dir: str or Path. The folder the files go to.
        targets: iterable of paths. Every file the command will write.
        overwrite: bool. Whether existing files (that are not `protected`) may be replaced.
        protected: iterable of paths. Files that are never replaced: the command's inputs and
            ground truth (the images and masks it reads).
        option: str. The option or argument that named `out_dir`, for the message.

    Raises:
        InvalidInputError: `out_dir` is inside a dataset, a target is a protected file, or
            (without `overwrite`) a target exists.

    Example:

    ```python
    check_output_targets("predictions", ["predictions/a.png"], protected=["data/val/labels/a.png"])
    ```
    """
    mark = dataset_mark(out_dir)
    if mark is not None:
        raise InvalidInputError(f"{option} {out_dir}: {mark}; writing predictions there would replace or mix with "
                                "its ground-truth masks. Choose another output folder.")
    targets = [Path(path) for path in targets]
    inputs = {os.path.realpath(path) for path in protected}
    clashes = [path for path in targets if os.path.realpath(path) in inputs]
    if clashes:
        raise InvalidInputError(f"{option} {out_dir}: {len(clashes)} output file(s) would replace files the command "
                                f"reads, e.g. {clashes[0]}. Choose another output folder.")
    existing = [path for path in targets if path.exists()]
    if existing and not overwrite:
        raise InvalidInputError(f"{len(existing)} output file(s) already exist, e.g. {existing[0]}; pass --overwrite "
                                f"to replace them or choose another {option}.")


def replace_atomically(path, write: Callable[[str], object], suffix: str | None = None) -> Path:
    """Calls `write(temporary)` with a hidden temporary file name beside `path`, then renames it to
    `path` (`os.replace`): a write that fails or is killed never leaves a half-written `path`
    (a reader sees the old file or the new one), and a failed write's temporary is removed.

    Args:
        path: The file to write (its folder must exist).
        write: Writes the whole file at the name it is given.
        suffix: The temporary's extension (writers that choose the format by it); default `path`'s.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".tmp-{path.stem}-", suffix=path.suffix if suffix is None else suffix,
                                         dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        remove_quietly(temporary)
        raise
    return path


def remove_quietly(path) -> None:
    """Removes the file `path` if it can (cleaning up after a failure that is reported anyway)."""
    try:
        os.remove(path)
    except OSError:
        pass
