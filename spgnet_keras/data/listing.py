"""Listing files: image/mask pairs of a user's folders as they are, and the images given to inference.

Pairing (`folder_files`) follows mmsegmentation's `img_suffix` / `seg_map_suffix`
convention: an image `<dir>/<prefix><key><image_suffix>` pairs with the mask
`<dir>/<mask_prefix><key><mask_suffix>`, `<dir>` being the file's sub-folder inside the
images / masks folder (so Cityscapes' city folders and stems repeated in different folders
pair correctly). Without an `image_suffix` an image may have any of the extensions of
`spgnet_keras.data.decoding.IMAGE_EXTENSIONS`. A list file selects and orders the
pairs: a text file of keys (Pascal VOC's `ImageSets/Segmentation/train.txt`) or a CSV of
`image,mask` paths (`read_pair_list`). When nothing pairs, the error says what the
folders hold and which option would pair them (`naming_hint`).
"""

from __future__ import annotations

import collections
import csv
import os
import warnings
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

import numpy as np

from spgnet_keras.data.decoding import IMAGE_EXTENSIONS
from spgnet_keras.data.spec import DatasetError, DatasetNotFoundError
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.paths import check_utf8_path

MASK_EXTENSIONS: tuple[str, ...] = (".png",)
UNREAD_IMAGE_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff", ".jp2", ".j2k", ".heic", ".heif", ".avif", ".ppm",
                                            ".pgm", ".pbm", ".pnm", ".exr", ".dng", ".ico", ".psd")
"""Image formats no part of the package reads (no TensorFlow decoder): a dataset folder's
files of these kinds are left out with a warning saying so, not silently."""
LIST_FILE_FORMATS = "a text file of keys (one image name without its suffix per line) or a CSV of image,mask paths"

Pair = tuple[str, str]


def require_dir(path: str | Path, what: str) -> Path:
    """Returns `path` as a `Path` or raises `DatasetNotFoundError` naming it."""
    path = Path(path)
    if not path.exists():
        raise DatasetNotFoundError(f"{what} not found: {path}")
    if not path.is_dir():
        raise DatasetNotFoundError(f"{what} is not a folder: {path}")
    return path


# === Scanning and keying (on relative paths, so that hints can try other options cheaply) ===


def scan_folder(folder: Path, recursive: bool = True) -> list[PurePosixPath]:
    """Every file of `folder` (and its sub-folders when `recursive`) as sorted paths
    relative to it; hidden files and folders (`.name`) are left out.

    Raises:
        InvalidInputError: A name that is not valid UTF-8 (`spgnet_keras.paths`), naming it.
    """
    found = _walk(folder) if recursive else [PurePosixPath(p.name) for p in sorted(folder.iterdir())
                                             if p.is_file() and not p.name.startswith(".")]
    for relative in found:
        check_utf8_path(folder / relative, "Dataset file")
    return found


def _walk(folder: Path) -> list[PurePosixPath]:
    found, visited = [], set()
    for directory, subfolders, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(directory)
        if real in visited:  # a symbolic link back up the tree
            subfolders[:] = []
            continue
        visited.add(real)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        base = Path(directory).relative_to(folder).as_posix()
        found += [PurePosixPath(base, name) for name in sorted(names) if not name.startswith(".")]
    return sorted(found)


def _name_matches(name: str, prefix: str, suffix: str) -> bool:
    return (name.startswith(prefix) and name.lower().endswith(suffix.lower())
            and len(name) > len(prefix) + len(suffix))


def _key(relative: PurePosixPath, prefix: str, suffix: str) -> str:
    core = relative.name[len(prefix):len(relative.name) - len(suffix)]
    return str(relative.parent / core)


def keyed_files(files: Iterable[PurePosixPath], prefix: str, suffixes: Sequence[str], folder: Path, what: str,
                exclude: Iterable[PurePosixPath] = ()) -> dict[str, PurePosixPath]:
    """Maps pairing key -> relative path for the `files` named `<prefix><key><suffix>`.

    Raises:
        DatasetError: Two files give the same key (e.g. `a.png` and `a.jpg`).
    """
    excluded = set(exclude)
    keyed: dict[str, PurePosixPath] = {}
    for relative in files:
        if relative in excluded:
            continue
        suffix = next((s for s in suffixes if _name_matches(relative.name, prefix, s)), None)
        if suffix is None:
            continue
        key = _key(relative, prefix, suffix)
        if key in keyed:
            raise DatasetError(
                f"Two {what} files pair as {key!r}: {folder / keyed[key]} and {folder / relative}; "
                "keep one, or give the suffix that tells them apart")
        keyed[key] = relative
    return keyed


def check_suffixes(image_suffix: str | None, mask_suffix: str) -> None:
    """ValueError for a mask suffix that is not a PNG name or an image suffix of an unread format."""
    if not isinstance(mask_suffix, str) or not mask_suffix.lower().endswith(MASK_EXTENSIONS):
        raise InvalidInputError(f"mask_suffix must end in .png (masks are PNG files: lossless class values), "
                         f"got {mask_suffix!r}")
    if image_suffix is not None and (not isinstance(image_suffix, str)
                                     or not image_suffix.lower().endswith(IMAGE_EXTENSIONS)):
        raise InvalidInputError(f"image_suffix must end in one of {', '.join(IMAGE_EXTENSIONS)}, got {image_suffix!r}")


def _image_suffixes(image_suffix: str | None) -> tuple[str, ...]:
    return IMAGE_EXTENSIONS if image_suffix is None else (image_suffix,)


# === Pairing ===


def folder_files(
    images_dir: str | Path,
    masks_dir: str | Path | None = None,
    *,
    image_suffix: str | None = None,
    mask_suffix: str = ".png",
    image_prefix: str = "",
    mask_prefix: str = "",
    split_list: str | Path | None = None,
    recursive: bool = True,
    skip_unpaired: bool = False,
) -> list[Pair]:
    """Pairs the images of a folder with their masks, in place (no file is moved or renamed).

    An image `<dir>/<image_prefix><key><image_suffix>` pairs with the mask
    `<dir>/<mask_prefix><key><mask_suffix>`, `<dir>` being its sub-folder inside
    `images_dir` / `masks_dir` (mmsegmentation's `img_suffix` / `seg_map_suffix`).
    Examples: CamVid `images/a.png` + `labels/a.png` (the defaults); `img/a.jpg` +
    `ann/a_mask.png` (`mask_suffix="_mask.png"`); Cityscapes
    `leftImg8bit/train/<city>/<key>_leftImg8bit.png` + `gtFine/train/<city>/<key>_gtFine_labelTrainIds.png`
    (`image_suffix="_leftImg8bit.png", mask_suffix="_gtFine_labelTrainIds.png"`); masks
    beside their images in one folder (`masks_dir=None`, `mask_suffix="_mask.png"`).

    Args:
        images_dir: Folder of images.
        masks_dir: Folder of label masks (PNG); None: the images' folder.
        image_suffix: End of every image name (e.g. `"_leftImg8bit.png"`); None: any of
            `IMAGE_EXTENSIONS` (png, jpg, jpeg, bmp, gif, webp; any case).
        mask_suffix: End of every mask name, a `.png` (e.g. `"_mask.png"`).
        image_prefix: Start of every image name, not part of the key.
        mask_prefix: Start of every mask name, not part of the key.
        split_list: A list file (`read_pair_list`) that selects and orders the pairs:
            keys (Pascal VOC's `ImageSets/Segmentation/train.txt`) or `image,mask` CSV rows.
        recursive: Look into sub-folders (pairs are matched by their path inside the folders).
        skip_unpaired: Drop images without a mask with a warning instead of raising.

    Returns:
        `(image_path, mask_path)` string pairs, sorted by key (or in the list's order).

    Raises:
        DatasetNotFoundError: (also a `ValueError`) a folder is missing, or no image / no
            pair is found.
        DatasetError: (a `ValueError`) an image has no mask (names it, and suggests the
            option that would pair the folders) unless `skip_unpaired`, or two files give
            the same key.
        ValueError: A suffix that is not an image / PNG name.
    """
    check_suffixes(image_suffix, mask_suffix)
    images_dir = require_dir(images_dir, "Image folder")
    masks_dir = require_dir(images_dir if masks_dir is None else masks_dir, "Mask folder")
    if split_list is not None and is_csv_list(split_list):
        return read_pair_list(split_list, images_dir, masks_dir)
    image_files = scan_folder(images_dir, recursive)
    mask_files = image_files if masks_dir == images_dir else scan_folder(masks_dir, recursive)
    masks = keyed_files(mask_files, mask_prefix, (mask_suffix,), masks_dir, "mask")
    beside = {masks_dir / path for path in masks.values()}
    images = keyed_files(image_files, image_prefix, _image_suffixes(image_suffix), images_dir, "image",
                         exclude=[path for path in image_files if images_dir / path in beside])
    warn_unread_images(image_files, images_dir)
    if not images:
        wanted = image_suffix or "/".join(e[1:] for e in IMAGE_EXTENSIONS)
        raise DatasetNotFoundError(f"No images ({image_prefix + '*' if image_prefix else ''}{wanted}) in "
                                   f"{images_dir}{describe_files(image_files, images_dir)}")
    keys = sorted(images) if split_list is None else listed_keys(split_list, images, image_suffix)
    unpaired = [key for key in keys if key not in masks]
    if unpaired:
        listed = ", ".join(str(images_dir / images[key]) for key in unpaired[:5])
        more = f" (and {len(unpaired) - 5} more)" if len(unpaired) > 5 else ""
        message = (f"No mask ({mask_prefix}<name>{mask_suffix} in {masks_dir}) for {len(unpaired)} of "
                   f"{len(keys)} image(s): {listed}{more}")
        hint = naming_hint([images[key] for key in unpaired], mask_files, images_dir, masks_dir, image_suffix,
                           mask_suffix, image_prefix, mask_prefix)
        if not skip_unpaired or len(unpaired) == len(keys):
            raise DatasetError(message + hint)
        warnings.warn(message + "; skipped", stacklevel=2)
    if split_list is None:
        orphans = sorted(set(masks) - set(images))
        if orphans:
            warnings.warn(f"{len(orphans)} mask(s) in {masks_dir} have no image, e.g. {masks_dir / masks[orphans[0]]}",
                          stacklevel=2)
    return [(str(images_dir / images[key]), str(masks_dir / masks[key])) for key in keys if key in masks]


def describe_files(files: Sequence[PurePosixPath], folder: Path) -> str:
    """`"; it holds 12 files: 10 .tif, 2 .txt"` (or that it is empty), for error messages."""
    if not files:
        return f"; {folder} holds no files"
    return f"; it holds {len(files)} file(s): {count_by_extension(files)}"


def count_by_extension(files: Sequence[PurePosixPath | Path], most: int = 4) -> str:
    """`"10 .tif, 2 .txt"`: how many of `files` have each extension (the `most` commonest)."""
    kinds = collections.Counter(path.suffix.lower() or "(no extension)" for path in files)
    return ", ".join(f"{count} {kind}" for kind, count in kinds.most_common(most))


def warn_unread_images(files: Sequence[PurePosixPath], folder: Path) -> None:
    """Warns, with their count by extension, about the `files` of a dataset's image folder in a
    format no part of the package reads (`UNREAD_IMAGE_EXTENSIONS`): they are left out."""
    unread = [path for path in files if path.suffix.lower() in UNREAD_IMAGE_EXTENSIONS]
    if unread:
        warnings.warn(f"{len(unread)} image file(s) in {folder} were left out ({count_by_extension(unread)}): "
                      f"spgnet_keras reads {', '.join(IMAGE_EXTENSIONS)}; convert them to PNG to use them",
                      stacklevel=3)


# === Suggesting the option that pairs the folders ===


def _common_prefix(a: str, b: str) -> int:
    size = 0
    for x, y in zip(a, b):
        if x != y:
            break
        size += 1
    return size


def _proposals(image: PurePosixPath, image_suffix: str | None, image_prefix: str,
               masks_here: Sequence[str]) -> list[tuple[str | None, str, str]]:
    """Options (image suffix or None, mask prefix, mask suffix) that would pair `image` with a
    mask of its folder: the mask whose name contains the image's core name, else those sharing
    the longest start with it (the rest of both names, from a separator on, being the suffixes;
    several when a folder holds several kinds of mask per image, as Cityscapes' gtFine)."""
    name = image.name
    own_suffix = next((s for s in _image_suffixes(image_suffix) if name.lower().endswith(s.lower())), "")
    core = name[len(image_prefix):len(name) - len(own_suffix)]
    containing = [(m.find(core), m) for m in masks_here if core and core in m]
    if containing:
        position, mask = min(containing, key=lambda item: (len(item[1]), item[1]))
        return [(image_suffix, mask[:position], mask[position + len(core):])]
    longest = max((_common_prefix(name, m) for m in masks_here), default=0)
    options = []
    for mask in masks_here:
        shared = _common_prefix(name, mask)
        if shared != longest:
            continue
        while shared and name[shared - 1] in "_-. ":
            shared -= 1  # the separator belongs to the suffixes: "_leftImg8bit.png", "_gtFine_labelIds.png"
        if shared >= max(1, len(core) // 2):
            options.append((name[shared:], "", mask[shared:]))
    return options


def _pairs_with(option, image_files, mask_files, image_prefix) -> int:
    image_suffix, mask_prefix, mask_suffix = option
    try:
        masks = keyed_files(mask_files, mask_prefix, (mask_suffix,), Path("."), "mask")
        images = keyed_files(image_files, image_prefix, _image_suffixes(image_suffix), Path("."), "image",
                             exclude=set(masks.values()))
    except DatasetError:
        return 0
    return len(set(images) & set(masks))


def _option_text(option, current) -> tuple[str, str]:
    """(Python keywords, command-line flags) of the options in `option` that differ from `current`."""
    python, flags = [], []
    for (name, value), now in zip(zip(("image_suffix", "mask_prefix", "mask_suffix"), option), current):
        if value != now and value is not None:
            python.append(f"{name}={value!r}")
            flags.append(f"--{name.replace('_', '-')} {value}")
    return ", ".join(python), " ".join(flags)


def naming_hint(unpaired: Sequence[PurePosixPath], mask_files: Sequence[PurePosixPath], images_dir: Path,
                masks_dir: Path, image_suffix: str | None, mask_suffix: str, image_prefix: str,
                mask_prefix: str, sample: int = 50) -> str:
    """What the mask folder holds and the option that would pair the images, for an error message."""
    pngs = [path for path in mask_files if path.suffix.lower() in MASK_EXTENSIONS]
    if not pngs:
        return (f". Masks must be PNG files (lossless class values)"
                f"{describe_files(mask_files, masks_dir).replace('it holds', f'{masks_dir} holds')}")
    by_folder = collections.defaultdict(list)
    for path in pngs:
        by_folder[path.parent].append(path.name)
    proposals = collections.Counter()
    for image in unpaired[:sample]:
        proposals.update(_proposals(image, image_suffix, image_prefix, by_folder.get(image.parent, [])))
    current = (image_suffix, mask_prefix, mask_suffix)
    top = max(proposals.values(), default=0)
    choices = [(option, _pairs_with(option, unpaired, pngs, image_prefix))
               for option, count in proposals.most_common(6) if count == top and option != current]
    choices = [(option, paired) for option, paired in choices if paired]
    if len(choices) == 1:
        (option, paired), = choices
        _, prefix, suffix = option
        named = [p for p in pngs if _name_matches(p.name, prefix, suffix)]
        ending = f"start with {prefix!r} and end in {suffix!r}" if prefix else f"end in {suffix!r}"
        share = "All" if len(named) == len(pngs) else f"{len(named)} of the"
        python, flags = _option_text(option, current)
        return (f". {share} {len(pngs)} masks in {masks_dir} {ending}: pass {flags} (Python: {python}); "
                f"with it {paired} of these {len(unpaired)} images pair")
    if choices:
        listed = "; ".join(f"{_option_text(option, current)[1]} ({paired} pairs)" for option, paired in choices)
        return (f". {masks_dir} holds several kinds of mask per image; pass the options of the one that holds "
                f"class indices: {listed}")
    same_name = {path.name.rsplit(".", 1)[0]: path for path in pngs}
    for image in unpaired[:sample]:
        stem = image.name[len(image_prefix):].rsplit(".", 1)[0]
        mask = same_name.get(mask_prefix + stem)
        if mask is not None and mask.parent != image.parent:
            return (f". Pairs are matched by their path inside the two folders: {images_dir / image} and "
                    f"{masks_dir / mask} are in different sub-folders")
    examples = ", ".join(str(p) for p in pngs[:3])
    return f". The {len(pngs)} PNG files in {masks_dir} (e.g. {examples}) do not pair with the images by name"


# === List files ===


def is_csv_list(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".csv"


def _list_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetNotFoundError(f"List file not found: {path}")
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line]


def listed_keys(split_list: str | Path, images: dict[str, PurePosixPath], image_suffix: str | None) -> list[str]:
    """The keys of a text list file, in its order, each one an image of `images`.

    A line is a key (`2007_000032`, or `city/name` for nested folders); an image name
    with its suffix (`2007_000032.jpg`) is read as its key too.

    Raises:
        DatasetNotFoundError: The file is missing or empty, or lists images that are not in
            the folder (names them).
    """
    path = Path(split_list)
    keys = []
    for line in _list_lines(path):
        if len(line.split()) > 1:
            raise DatasetError(f"{path}: {line!r} has several fields; a list file is {LIST_FILE_FORMATS}")
        key = line.removeprefix("./")
        if key not in images:
            suffix = next((s for s in _image_suffixes(image_suffix) if key.lower().endswith(s.lower())), None)
            key = key[:len(key) - len(suffix)] if suffix else key
        keys.append(key)
    if not keys:
        raise DatasetNotFoundError(f"List file {path} is empty")
    missing = [key for key in keys if key not in images]
    if missing:
        shown = ", ".join(repr(key) for key in missing[:5]) + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else "")
        raise DatasetNotFoundError(f"{path} lists {len(missing)} image(s) that are not in the image folder: {shown}")
    repeated = [key for key, count in collections.Counter(keys).items() if count > 1]
    if repeated:
        raise DatasetError(f"{path} lists {repeated[0]!r} more than once")
    return keys


def read_pair_list(path: str | Path, images_dir: str | Path | None = None,
                   masks_dir: str | Path | None = None) -> list[Pair]:
    """The pairs of a CSV list file: one `image,mask` row per pair (an `image,mask` header
    row is allowed; more columns are ignored).

    Relative paths are read from `images_dir` / `masks_dir` when given, else from the CSV
    file's folder.

    Raises:
        DatasetNotFoundError: The file is missing or empty, or a listed file does not exist
            (names the rows).
        DatasetError: A row with fewer than two columns.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"List file not found: {path}")
    with open(path, newline="") as handle:
        rows = [(number, [cell.strip() for cell in row]) for number, row in enumerate(csv.reader(handle), 1)
                if any(cell.strip() for cell in row)]
    image_base = Path(images_dir) if images_dir is not None else path.parent
    mask_base = Path(masks_dir) if masks_dir is not None else path.parent
    if rows and not (image_base / rows[0][1][0]).is_file() and rows[0][1][0].lower() in ("image", "images", "img"):
        rows = rows[1:]  # a header row
    if not rows:
        raise DatasetNotFoundError(f"List file {path} is empty")
    pairs, missing = [], []
    for number, row in rows:
        if len(row) < 2:
            raise DatasetError(f"{path}, row {number}: expected image,mask, got {','.join(row)!r}")
        image, mask = image_base / row[0], mask_base / row[1]
        missing += [f"row {number}: {file}" for file in (image, mask) if not file.is_file()]
        pairs.append((str(image), str(mask)))
    if missing:
        shown = "; ".join(missing[:5]) + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else "")
        raise DatasetNotFoundError(f"{path} lists {len(missing)} file(s) that do not exist: {shown}")
    return pairs


# === Splitting ===


def split_pairs(pairs: Sequence[Pair], val_fraction: float, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """`(train, val)`: a seeded random `val_fraction` of `pairs` held out (at least one
    pair on each side), each part in the original order.

    Raises:
        ValueError: `val_fraction` outside (0, 1), or fewer than two pairs.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise InvalidInputError(f"val_fraction must be a number between 0 and 1 (exclusive), got {val_fraction!r}")
    if len(pairs) < 2:
        raise DatasetError(f"Holding out a validation part needs at least 2 pairs, found {len(pairs)}")
    count = min(len(pairs) - 1, max(1, round(val_fraction * len(pairs))))
    held_out = set(np.random.default_rng(seed).permutation(len(pairs))[:count].tolist())
    return ([pair for index, pair in enumerate(pairs) if index not in held_out],
            [pair for index, pair in enumerate(pairs) if index in held_out])


# === Inference inputs ===


def list_images(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Expands files and folders into a sorted list of image files.

    Folders contribute their files (not recursive) with one of `IMAGE_EXTENSIONS`; a
    warning says how many other files were skipped, by extension (hidden files aside).

    Raises:
        FileNotFoundError: A path does not exist.
        ValueError: A folder holds no image file, or nothing at all was given, or a file name
            in a folder is not valid UTF-8.
    """
    if not inputs:
        raise InvalidInputError("No input images given.")
    files: list[Path] = []
    for entry in inputs:
        entry = Path(entry)
        if entry.is_dir():
            found, skipped = _folder_images(entry)
            if not found:
                raise InvalidInputError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {entry}"
                                        + describe_files(skipped, entry))
            if skipped:
                warnings.warn(f"Skipped {len(skipped)} file(s) of {entry} that are not images spgnet_keras reads "
                              f"({count_by_extension(skipped)}); it reads {', '.join(IMAGE_EXTENSIONS)}: convert "
                              "the others (e.g. TIFF) to PNG", stacklevel=2)
            files.extend(found)
        elif entry.is_file():
            files.append(entry)
        else:
            raise FileNotFoundError(f"Input not found: {entry}")
    return files


def _folder_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """The image files (`IMAGE_EXTENSIONS`) of `folder` and the other files it holds, both sorted."""
    entries = sorted(path for path in folder.iterdir() if path.is_file() and not path.name.startswith("."))
    for path in entries:
        check_utf8_path(path, "input")
    return ([path for path in entries if path.suffix.lower() in IMAGE_EXTENSIONS],
            [path for path in entries if path.suffix.lower() not in IMAGE_EXTENSIONS])
