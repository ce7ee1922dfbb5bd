"""The one rule for image scale factors: training's random scales (``data.scales``,
``make_dataset(scales=...)``) and the test-time scales of prediction, evaluation and export."""

from __future__ import annotations

import math
import numbers

from spgnet_keras.constants import MAX_SCALE
from spgnet_keras.errors import InvalidInputError


def check_scales(scales, name: str = "scales") -> tuple[float, ...]:
    """Returns ``scales`` as a tuple of floats; ValueError naming ``name`` unless it holds at
    least one number and every number is in ``(0, MAX_SCALE]`` (the paper's largest is 2.0)."""
    if isinstance(scales, numbers.Real) and not isinstance(scales, bool):
        scales = (scales,)
    try:
        scales = tuple(scales)
    except TypeError:
        raise InvalidInputError(f"`{name}` must be a sequence of positive numbers, got {scales!r}.") from None
    if not scales:
        raise InvalidInputError(f"`{name}` must contain at least one scale.")
    for scale in scales:
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale <= 0:
            raise InvalidInputError(f"`{name}` must be positive numbers, got {scale!r}.")
        if scale > MAX_SCALE:
            raise InvalidInputError(
                f"`{name}` must be at most {MAX_SCALE} (spgnet_keras.constants.MAX_SCALE; the paper's "
                f"largest is 2.0), got {scale!r}."
            )
    return tuple(float(s) for s in scales)
