"""Dataset description shared by every dataset module (kept separate to avoid import cycles)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from spgnet_keras.classes import (
    check_class_names,
    check_num_classes,
    check_palette,
    default_class_names,
    default_palette,
)
from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.errors import InvalidInputError


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a segmentation dataset's labels mean.

    Attributes:
        num_classes: Number of evaluated classes; valid labels are `0 .. num_classes - 1`.
        class_names: One name per class, in label order.
        palette: One `(r, g, b)` colour (0-255) per class, used for visualisation and for
            reading colour-coded masks.
        ignore_index: Label value excluded from losses and metrics.
        name: Short dataset name, for logs.
        palette_given: False when the colours are the default palette (nobody chose them):
            they cannot decode colour-coded masks.

    Example:

    ```python
    spec = DatasetSpec(2, ("background", "road"), ((0, 0, 0), (128, 64, 128)))
    ```
    """

    num_classes: int
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = IGNORE_LABEL
    name: str = ""
    palette_given: bool = dataclasses.field(default=True, compare=False)  # False: the default colours

    def __post_init__(self) -> None:
        """Checks that names and palette agree with `num_classes` (the rules of
        `spgnet_keras.classes`).

        Raises:
            ValueError: If there are fewer than 2 classes, the lengths disagree, a name is
                empty or repeated, or a colour is not three integers in 0..255.
        """
        check_num_classes(self.num_classes, f"DatasetSpec {self.name!r}: num_classes")
        who = f"DatasetSpec {self.name!r}"
        object.__setattr__(self, "class_names", check_class_names(
            tuple(str(n) for n in self.class_names), self.num_classes, f"{who} class names"))
        object.__setattr__(self, "palette", check_palette(self.palette, self.num_classes, f"{who} palette"))

    @classmethod
    def with_defaults(cls, num_classes: int, class_names=None, palette=None, name: str = "",
                      ignore_index: int = IGNORE_LABEL) -> "DatasetSpec":
        """A description with `class_0, class_1, ...` for missing names and the default
        palette (`spgnet_keras.classes.default_palette`) for missing colours."""
        return cls(
            num_classes=num_classes,
            class_names=default_class_names(num_classes) if class_names is None else tuple(class_names),
            palette=default_palette(num_classes) if palette is None else palette,
            ignore_index=ignore_index,
            name=name,
            palette_given=palette is not None,
        )

    @classmethod
    def from_meta_json(cls, path: str | Path, name: str = "") -> "DatasetSpec":
        """Reads a CamVid-style `meta.json` (keys `classes`, optional `palette` and
        `ignore_index`): one of the classes-file formats of
        `spgnet_keras.data.class_files.read_classes`.

        Args:
            path: The `meta.json` file.
            name: Dataset name to record; defaults to the parent folder's name.

        Returns:
            The dataset description.

        Raises:
            FileNotFoundError: If the file does not exist.
            ValueError: If it is not such a JSON object.
        """
        from spgnet_keras.data.class_files import read_classes

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Dataset meta file not found: {path}")
        return read_classes(path, name=name or path.parent.name)

    def to_meta_dict(self) -> dict:
        """Returns the `meta.json` content describing this spec."""
        return {
            "classes": list(self.class_names),
            "palette": [list(c) for c in self.palette],
            "ignore_index": self.ignore_index,
        }


class DatasetError(InvalidInputError):
    """A dataset file is unusable (unreadable, unpaired, wrong size, bad label values).

    Example:

    ```python
    try:
        validate_dataset(pairs, num_classes=11)
    except DatasetError as error:
        print(error)  # names every bad file and value
    ```
    """


class DatasetNotFoundError(FileNotFoundError, DatasetError):
    """A dataset folder or file is missing or empty.

    Subclasses both `FileNotFoundError` and `ValueError` so callers can catch either.

    Example:

    ```python
    try:
        dataset_files("camvid", "missing/folder", "train")
    except FileNotFoundError as error:
        print(error)
    ```
    """
