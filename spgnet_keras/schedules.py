"""Learning-rate schedules for SPGNet training."""

from __future__ import annotations

import keras
from keras import ops

from spgnet_keras.errors import InvalidInputError

__all__ = ["PolyDecay"]

_PACKAGE = "spgnet_keras"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    """"Poly" learning-rate decay with optional linear warm-up.

    For `step >= warmup_steps`:

    ```
    t = min(step, max_steps) / max_steps
    lr = (initial_learning_rate - end_learning_rate) * (1 - t) ** power
         + end_learning_rate
    ```

    so `lr = initial * (1 - step / max_steps) ** power` with the default
    `end_learning_rate=0`, and `lr == end_learning_rate` for every
    `step >= max_steps`. The decay uses the global step (it does not restart
    after warm-up).

    For `step < warmup_steps` the rate rises linearly from
    `warmup_start_lr` (at step 0) to the poly value at `warmup_steps`, so
    the schedule is continuous:

    ```
    lr = warmup_start_lr + (poly(warmup_steps) - warmup_start_lr)
         * step / warmup_steps
    ```

    Args:
        initial_learning_rate: float. Base learning rate (at step 0 without warm-up).
        max_steps: int. Total number of training steps (> 0).
        power: float. Decay exponent (0.9 in the paper).
        end_learning_rate: float. Rate at and after `max_steps`.
        warmup_steps: int. Length of the linear warm-up (0 = none); at most
            `max_steps`.
        warmup_start_lr: float. Rate at step 0 when warming up.
        name: str. Schedule name.

    Raises:
        InvalidInputError: For non-positive `max_steps`/`power` or an invalid
            `warmup_steps` (a `ValueError`).

    Example:

    ```python
    schedule = PolyDecay(0.01, max_steps=90_000, power=0.9)
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    ```
    """

    def __init__(
        self,
        initial_learning_rate: float,
        max_steps: int,
        power: float = 0.9,
        end_learning_rate: float = 0.0,
        warmup_steps: int = 0,
        warmup_start_lr: float = 0.0,
        name: str = "PolyDecay",
    ):
        super().__init__()
        if int(max_steps) <= 0:
            raise InvalidInputError(f"max_steps must be > 0, got {max_steps}.")
        if float(power) <= 0:
            raise InvalidInputError(f"power must be > 0, got {power}.")
        if not 0 <= int(warmup_steps) <= int(max_steps):
            raise InvalidInputError(
                f"warmup_steps must be in [0, max_steps={max_steps}], "
                f"got {warmup_steps}."
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.max_steps = int(max_steps)
        self.power = float(power)
        self.end_learning_rate = float(end_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.warmup_start_lr = float(warmup_start_lr)
        self.name = name

    def _poly(self, step):
        """Poly value at (float) `step`, clamped to `[0, max_steps]`."""
        step = ops.clip(step, 0.0, float(self.max_steps))
        remaining = 1.0 - step / float(self.max_steps)
        span = self.initial_learning_rate - self.end_learning_rate
        return span * ops.power(remaining, self.power) + self.end_learning_rate

    def __call__(self, step):
        """Learning rate at `step` (int or tensor) as a float32 tensor."""
        step = ops.cast(step, "float32")
        lr = self._poly(step)
        if self.warmup_steps > 0:
            warm_end = float(self.warmup_steps)
            target = self._poly(ops.convert_to_tensor(warm_end, "float32"))
            frac = ops.clip(step, 0.0, warm_end) / warm_end
            warm = self.warmup_start_lr + (target - self.warmup_start_lr) * frac
            lr = ops.where(step < warm_end, warm, lr)
        return lr

    def get_config(self):
        """Returns the constructor arguments."""
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "max_steps": self.max_steps,
            "power": self.power,
            "end_learning_rate": self.end_learning_rate,
            "warmup_steps": self.warmup_steps,
            "warmup_start_lr": self.warmup_start_lr,
            "name": self.name,
        }
