"""Classes files: the names (and optionally the colours) of a dataset's classes, in label order.

`read_classes` reads any of these (line `i` / entry `i` is class `i`):

* JSON: `{"classes": ["sky", "road"], "palette": [[128, 128, 128], [128, 64, 128]]}`
  (a dataset `meta.json`; `palette` and `ignore_index` are optional), a list of names
  `["sky", "road"]`, or a list of objects `[{"name": "sky", "color": [128, 128, 128]}, ...]`.
* CSV (`.csv`): one `name` or `name,r,g,b` row per class; a header row whose first cell
  is `name` or `class` is skipped.
* Text (any other name): one `name` or `name r g b` line per class; `#` starts a comment.
  CVAT's `labelmap.txt` (`name:r,g,b::`) is read as it is.

Colours are needed to read colour-coded masks (`mask_format="color"`: the colour of class
`i` is its colour here) and are what the figures and `spgnet predict` paint with; classes
without colours get the default palette (`spgnet_keras.classes.default_palette`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from spgnet_keras.classes import check_num_classes, default_palette
from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.data.spec import DatasetSpec
from spgnet_keras.errors import InvalidInputError

CLASSES_FILE_FORMATS = ("JSON (a list of names, or {\"classes\": [...], \"palette\": [[r, g, b], ...]}), "
                        "CSV (name[,r,g,b] rows) or text (name [r g b] lines)")


def read_classes(path: str | Path, name: str = "") -> DatasetSpec:
    """The `DatasetSpec` described by a classes file (formats in the module docstring).

    Args:
        path: The classes file.
        name: Dataset name to record; defaults to the file's stem.

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file does not follow one of the formats, names a class twice, gives
            colours to some classes only, or has fewer than two classes (names the line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Classes file not found: {path}")
    text = path.read_text()
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        names, colours, ignore_index = _from_json(path, text)
    elif path.suffix.lower() == ".csv":
        names, colours, ignore_index = (*_from_rows(path, _csv_rows(text)), IGNORE_LABEL)
    else:
        names, colours, ignore_index = (*_from_rows(path, _text_rows(text)), IGNORE_LABEL)
    check_num_classes(len(names), f"the number of classes in {path}")
    given = [colour is not None for colour in colours]
    if any(given) and not all(given):
        missing = names[given.index(False)]
        raise InvalidInputError(f"{path}: some classes have colours and some not (e.g. {missing!r}); give every class one "
                         "or none")
    palette = [list(c) for c in colours] if all(given) else default_palette(len(names)).tolist()
    try:
        return DatasetSpec(num_classes=len(names), class_names=tuple(names), palette=tuple(map(tuple, palette)),
                           ignore_index=ignore_index, name=name or path.stem, palette_given=all(given))
    except ValueError as error:
        raise InvalidInputError(f"{path}: {error}") from None


def _from_json(path: Path, text: str):
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"{path}: not valid JSON ({error}); a classes file is {CLASSES_FILE_FORMATS}") from None
    ignore_index = IGNORE_LABEL
    if isinstance(content, dict):
        if "classes" not in content:
            raise InvalidInputError(f"{path}: a JSON object needs a 'classes' list (and optionally 'palette')")
        names, palette = content["classes"], content.get("palette")
        ignore_index = int(content.get("ignore_index", IGNORE_LABEL))
        if not isinstance(names, list):
            raise InvalidInputError(f"{path}: 'classes' must be a list of names")
        if palette is not None and (not isinstance(palette, list) or len(palette) != len(names)):
            raise InvalidInputError(f"{path}: 'palette' must give one [r, g, b] colour per class "
                             f"({len(names)} classes)")
        colours = palette if palette is not None else [None] * len(names)
    elif isinstance(content, list) and all(isinstance(entry, dict) for entry in content):
        missing = [entry for entry in content if "name" not in entry]
        if missing:
            raise InvalidInputError(f"{path}: every class object needs a 'name', got {missing[0]!r}")
        names = [entry["name"] for entry in content]
        colours = [entry.get("color", entry.get("colour")) for entry in content]
    elif isinstance(content, list):
        names, colours = content, [None] * len(content)
    else:
        raise InvalidInputError(f"{path}: a classes file is {CLASSES_FILE_FORMATS}")
    return [str(n) if isinstance(n, (str, int)) else n for n in names], colours, ignore_index


def _csv_rows(text: str):
    rows = [(number, [cell.strip() for cell in row])
            for number, row in enumerate(csv.reader(text.splitlines()), 1) if any(c.strip() for c in row)]
    if rows and rows[0][1][0].lower() in ("name", "class", "class_name", "label"):
        rows = rows[1:]
    return rows


def _text_rows(text: str):
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if ":" in line:  # CVAT labelmap.txt: name:r,g,b:parts:actions
            name, _, rest = line.partition(":")
            colour = rest.split(":", 1)[0]
            rows.append((number, [name.strip(), *[v.strip() for v in colour.split(",") if v.strip()]]))
        else:
            rows.append((number, line.split()))
    return rows


def _from_rows(path: Path, rows):
    names, colours = [], []
    for number, cells in rows:
        if len(cells) == 1:
            names.append(cells[0])
            colours.append(None)
        elif len(cells) == 4:
            try:
                colour = [int(value) for value in cells[1:]]
            except ValueError:
                raise InvalidInputError(f"{path}, line {number}: expected 'name' or 'name r g b', got {cells!r}") from None
            names.append(cells[0])
            colours.append(colour)
        else:
            raise InvalidInputError(f"{path}, line {number}: expected 'name' or 'name r g b' (a name with spaces: use a "
                             f"CSV file), got {cells!r}")
    return names, colours
