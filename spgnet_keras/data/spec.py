"""Dataset description shared by every dataset module (kept separate to avoid import cycles)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

from spgnet_keras.constants import IGNORE_LABEL


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a segmentation dataset's labels mean.

    Attributes:
        num_classes: Number of evaluated classes; valid labels are ``0 .. num_classes - 1``.
        class_names: One name per class, in label order.
        palette: One ``(r, g, b)`` colour (0-255) per class, used for visualisation and for
            reading colour-coded masks.
        ignore_index: Label value excluded from losses and metrics.
        name: Short dataset name, for logs.
    """

    num_classes: int
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = IGNORE_LABEL
    name: str = ""

    def __post_init__(self) -> None:
        """Checks that names and palette agree with ``num_classes``.

        Raises:
            ValueError: If there are fewer than 2 classes, the lengths disagree or a colour
                is not three values in 0..255.
        """
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        object.__setattr__(
            self, "palette", tuple(tuple(int(c) for c in colour) for colour in self.palette)
        )
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(
                f"DatasetSpec {self.name!r}: num_classes must be an integer >= 2, got {self.num_classes!r} "
                "(with one class the loss is 0 for every pixel: nothing trains)"
            )
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"DatasetSpec {self.name!r}: {len(self.class_names)} class names for "
                f"num_classes={self.num_classes}"
            )
        if len(self.palette) != self.num_classes:
            raise ValueError(
                f"DatasetSpec {self.name!r}: {len(self.palette)} palette colours for "
                f"num_classes={self.num_classes}"
            )
        for colour in self.palette:
            if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
                raise ValueError(f"DatasetSpec {self.name!r}: bad palette colour {colour}")

    @classmethod
    def from_meta_json(cls, path: str | Path, name: str = "") -> "DatasetSpec":
        """Reads a CamVid-style ``meta.json`` (keys ``classes``, ``palette``, ``ignore_index``).

        Args:
            path: The ``meta.json`` file.
            name: Dataset name to record; defaults to the parent folder's name.

        Returns:
            The dataset description.

        Raises:
            FileNotFoundError: If the file does not exist.
            ValueError: If a required key is missing.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Dataset meta file not found: {path}")
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON: {error}") from None
        missing = [key for key in ("classes", "palette") if key not in meta]
        if missing:
            raise ValueError(f"{path}: missing key(s) {missing}")
        classes: Sequence[str] = meta["classes"]
        return cls(
            num_classes=len(classes),
            class_names=tuple(classes),
            palette=tuple(tuple(c) for c in meta["palette"]),
            ignore_index=int(meta.get("ignore_index", IGNORE_LABEL)),
            name=name or path.parent.name,
        )

    def to_meta_dict(self) -> dict:
        """Returns the ``meta.json`` content describing this spec."""
        return {
            "classes": list(self.class_names),
            "palette": [list(c) for c in self.palette],
            "ignore_index": self.ignore_index,
        }


class DatasetError(ValueError):
    """A dataset file is unusable (unreadable, unpaired, wrong size, bad label values)."""


class DatasetNotFoundError(FileNotFoundError, DatasetError):
    """A dataset folder or file is missing or empty.

    Subclasses both ``FileNotFoundError`` and ``ValueError`` so callers can catch either.
    """
