"""Listing files: image/mask pairs of a folder dataset, and the images given to inference."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

from spgnet_keras.data.decoding import IMAGE_EXTENSIONS
from spgnet_keras.data.spec import DatasetError, DatasetNotFoundError

MASK_EXTENSIONS: tuple[str, ...] = (".png",)

Pair = tuple[str, str]


def require_dir(path: str | Path, what: str) -> Path:
    """Returns ``path`` as a ``Path`` or raises :class:`DatasetNotFoundError` naming it."""
    path = Path(path)
    if not path.exists():
        raise DatasetNotFoundError(f"{what} not found: {path}")
    if not path.is_dir():
        raise DatasetNotFoundError(f"{what} is not a folder: {path}")
    return path


def files_by_stem(folder: Path, extensions: Sequence[str], what: str) -> dict[str, Path]:
    """Maps file stem -> path for files in ``folder`` with one of ``extensions``.

    Raises:
        DatasetError: If two files share a stem (e.g. ``a.png`` and ``a.jpg``).
    """
    by_stem: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in extensions:
            continue
        if path.stem in by_stem:
            raise DatasetError(
                f"Two {what} files share the stem {path.stem!r}: {by_stem[path.stem]} and {path}")
        by_stem[path.stem] = path
    return by_stem


def folder_files(
    images_dir: str | Path, masks_dir: str | Path, skip_unpaired: bool = False
) -> list[Pair]:
    """Pairs images with masks of the same file stem.

    Images may be any of ``IMAGE_EXTENSIONS`` (png, jpg, jpeg, bmp, gif, webp; any case); masks must be
    ``.png``. Masks without an image are ignored with a warning.

    Args:
        images_dir: Folder of images.
        masks_dir: Folder of label masks.
        skip_unpaired: If True, images without a mask are dropped with a warning instead of
            raising.

    Returns:
        ``(image_path, mask_path)`` string pairs sorted by stem.

    Raises:
        DatasetNotFoundError: (also a ``ValueError``) if a folder is missing, or no image /
            no pair is found.
        DatasetError: (a ``ValueError``) if an image has no mask (names the file) and
            ``skip_unpaired`` is False, or two images share a stem.
    """
    images_dir = require_dir(images_dir, "Image folder")
    masks_dir = require_dir(masks_dir, "Mask folder")
    images = files_by_stem(images_dir, IMAGE_EXTENSIONS, "image")
    masks = files_by_stem(masks_dir, MASK_EXTENSIONS, "mask")
    if not images:
        raise DatasetNotFoundError(
            f"No images ({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)}) in {images_dir}")
    unpaired = [images[stem] for stem in images if stem not in masks]
    if unpaired:
        listed = ", ".join(str(p) for p in unpaired[:5])
        more = f" (and {len(unpaired) - 5} more)" if len(unpaired) > 5 else ""
        message = f"No mask (.png of the same stem in {masks_dir}) for image(s): {listed}{more}"
        if not skip_unpaired:
            raise DatasetError(message)
        warnings.warn(message + "; skipped", stacklevel=2)
    orphans = sorted(stem for stem in masks if stem not in images)
    if orphans:
        warnings.warn(
            f"{len(orphans)} mask(s) in {masks_dir} have no image, e.g. {orphans[0]!r}",
            stacklevel=2)
    pairs = [(str(images[s]), str(masks[s])) for s in sorted(images) if s in masks]
    if not pairs:
        raise DatasetNotFoundError(f"No image/mask pairs in {images_dir} and {masks_dir}")
    return pairs



def list_images(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Expands files and folders into a sorted list of image files.

    Folders contribute their files (not recursive) with one of :data:`IMAGE_EXTENSIONS`.

    Raises:
        FileNotFoundError: A path does not exist.
        ValueError: A folder holds no image file, or nothing at all was given.
    """
    if not inputs:
        raise ValueError("No input images given.")
    files: list[Path] = []
    for entry in inputs:
        entry = Path(entry)
        if entry.is_dir():
            found = sorted(p for p in entry.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise ValueError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {entry}")
            files.extend(found)
        elif entry.is_file():
            files.append(entry)
        else:
            raise FileNotFoundError(f"Input not found: {entry}")
    return files
