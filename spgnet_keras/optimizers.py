"""SGD with momentum and PyTorch-style (coupled) or Keras-style (decoupled) weight decay.

PyTorch's `SGD(weight_decay=wd)`, which the paper's code base (In-Place ABN) uses with
momentum 0.9 and wd 1e-4 (Sec 4.2), is *coupled* L2: `wd * w` is added to the gradient,
which then flows through the momentum buffer (`b = m b + g + wd w; w -= lr b`). Keras'
`SGD(weight_decay=wd)` is *decoupled*: every decayed variable is shrunk as `w -= lr * wd * w`
before the step, and the momentum buffer only sees the loss gradient; with
momentum `m` that is about `1 - m` (10x at `m = 0.9`) weaker in steady state.

`KernelDecaySGD` does either (`weight_decay_mode`). The coupled form is a
gradient transform inside the optimizer's per-variable update (no kernel regularizers), so
a user's own optimizer given to `compile()` is never regularised behind their back. That
update runs on the gradients after Keras has summed them over the replicas of a
`tf.distribute` strategy, so the decay is counted once, not once per replica.

Keras' momentum folds the learning rate into the velocity (`v = m v - lr g; w += v`)
where PyTorch keeps it outside (`w -= lr b`); the two are identical for a constant
learning rate and differ by the step-to-step change of the rate under a schedule (with the
paper's poly decay, a relative `0.9 / (remaining steps)` per step).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from spgnet_keras.errors import InvalidInputError

__all__ = ["DECAY_VARIABLES", "WEIGHT_DECAY_MODES", "KernelDecaySGD", "build_sgd"]

_PACKAGE = "spgnet_keras"
WEIGHT_DECAY_MODES = ("coupled", "decoupled")
# Which trainable variables are decayed -> the minimum variable rank that is.
DECAY_VARIABLES = {"all": 0, "kernels": 2}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class KernelDecaySGD(keras.optimizers.SGD):
    """Keras SGD with coupled or decoupled weight decay on a chosen set of variables.

    A trainable variable is decayed iff its rank is at least `decay_min_rank` (2, the
    default: Conv/Dense/depthwise kernels are decayed; biases, BatchNormalization gamma
    and beta are not; 0: every trainable variable, as PyTorch's
    `SGD(model.parameters(), weight_decay=...)`) and its path (e.g. `"conv2d/kernel"`) contains none of the
    substrings in `exclude_names`. The exclusion is computed in `build` from the
    variables themselves, through Keras' `exclude_from_weight_decay`, and the rule and
    the mode live in the config, so they survive `get_config`/`from_config` and
    `.keras` save/load.

    Args:
        learning_rate: float or `LearningRateSchedule`. The rate (e.g.
            `spgnet_keras.schedules.PolyDecay`).
        momentum: float. Momentum in `[0, 1]`.
        nesterov: bool. Whether to use Nesterov momentum.
        weight_decay: float. Decay factor (`None` or 0 disables it).
        weight_decay_mode: str. `"coupled"` (PyTorch: `wd * w` added to the gradient,
            before momentum; the default) or `"decoupled"` (Keras: `w -= lr * wd * w`
            outside the momentum). See the module docstring.
        decay_min_rank: int. Minimum variable rank that is decayed.
        exclude_names: list of str. Extra substrings of variable paths to exclude.
        **kwargs: Other `keras.optimizers.SGD` arguments (`clipnorm`,
            `name`, ...).

    Raises:
        InvalidInputError: For a `weight_decay_mode` other than "coupled"/"decoupled".

    Example:

    ```python
    optimizer = KernelDecaySGD(PolyDecay(0.01, max_steps=90_000), momentum=0.9, weight_decay=1e-4)
    model.compile(optimizer=optimizer)
    ```
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float | None = 1e-4,
        weight_decay_mode: str = "coupled",
        decay_min_rank: int = 2,
        exclude_names: Sequence[str] | None = None,
        **kwargs,
    ):
        if weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise InvalidInputError(f"`weight_decay_mode` must be one of {WEIGHT_DECAY_MODES}, got {weight_decay_mode!r}.")
        super().__init__(
            learning_rate=learning_rate,
            momentum=float(momentum),
            nesterov=nesterov,
            weight_decay=weight_decay or None,
            **kwargs,
        )
        self.weight_decay_mode = weight_decay_mode
        self.decay_min_rank = int(decay_min_rank)
        self.exclude_names = [str(n) for n in (exclude_names or [])]

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Configs saved before `weight_decay_mode` existed were decoupled: kept so."""
        config = {"weight_decay_mode": "decoupled", **config}
        return super().from_config(config, custom_objects=custom_objects)

    def uses_weight_decay(self, variable) -> bool:
        """Whether `variable` is decayed (ignores `weight_decay` being 0).

        Args:
            variable: A Keras (or tf) variable.

        Returns:
            True iff the rank is >= `decay_min_rank` and the path contains
            none of `exclude_names`.
        """
        if len(variable.shape) < self.decay_min_rank:
            return False
        path = getattr(variable, "path", None) or variable.name
        return not any(name in path for name in self.exclude_names)

    def build(self, variables):
        """Registers the non-decayed variables, then builds the SGD state."""
        if self.built:
            return
        excluded = [v for v in variables if not self.uses_weight_decay(v)]
        self.exclude_from_weight_decay(var_list=excluded)
        super().build(variables)

    def _apply_weight_decay(self, variables):
        if self.weight_decay_mode == "decoupled":
            super()._apply_weight_decay(variables)

    def update_step(self, gradient, variable, learning_rate):
        """SGD step; in coupled mode on `gradient + weight_decay * variable`.

        Called per variable on the gradient already summed over replicas.
        """
        if self.weight_decay_mode == "coupled" and self.weight_decay and self._use_weight_decay(variable):
            decay = ops.multiply(ops.cast(self.weight_decay, variable.dtype), variable)
            gradient = ops.add(ops.cast(gradient, variable.dtype), decay)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        """Returns the SGD config plus the decay mode and exclusion rule."""
        config = super().get_config()
        config.update(
            {
                "weight_decay_mode": self.weight_decay_mode,
                "decay_min_rank": self.decay_min_rank,
                "exclude_names": list(self.exclude_names),
            }
        )
        return config


def build_sgd(
    learning_rate,
    momentum: float = 0.9,
    weight_decay: float | None = 1e-4,
    model: keras.Model | None = None,
    nesterov: bool = False,
    exclude_names: Sequence[str] | None = None,
    weight_decay_mode: str = "coupled",
    decay_variables: str = "kernels",
    **kwargs,
) -> KernelDecaySGD:
    """Builds the paper's SGD: momentum 0.9, coupled (PyTorch) weight decay 1e-4.

    Args:
        learning_rate: Float or `LearningRateSchedule`.
        momentum: Momentum.
        weight_decay: Weight decay factor.
        model: Optional built model; if given, the optimizer is built on its
            trainable variables right away (so `uses_weight_decay` and the
            optimizer state are ready). Call this under the same
            `tf.distribute` strategy scope as the model. If omitted, Keras
            builds the optimizer at the first training step.
        nesterov: Whether to use Nesterov momentum.
        exclude_names: Extra substrings of variable paths not to decay.
        weight_decay_mode: "coupled" (PyTorch, the paper's code base) or
            "decoupled" (Keras' own `weight_decay`; see the module docstring).
        decay_variables: "kernels" (conv/dense kernels only) or "all" (every
            trainable variable, BatchNorm gamma/beta and biases included, as
            PyTorch's `SGD(model.parameters(), ...)`; the paper recipe's choice,
            `spgnet_keras.config.OptimizerConfig`).
        **kwargs: Passed to `KernelDecaySGD` (e.g. `clipnorm`).

    Returns:
        A `KernelDecaySGD`.

    Raises:
        ValueError: If `model` is given but not built, or for an unknown
            `weight_decay_mode`/`decay_variables`.
    """
    if decay_variables not in DECAY_VARIABLES:
        raise InvalidInputError(f"`decay_variables` must be one of {sorted(DECAY_VARIABLES)}, got {decay_variables!r}.")
    optimizer = KernelDecaySGD(
        learning_rate=learning_rate,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        weight_decay_mode=weight_decay_mode,
        decay_min_rank=DECAY_VARIABLES[decay_variables],
        exclude_names=exclude_names,
        **kwargs,
    )
    if model is not None:
        if not model.built:
            raise InvalidInputError("build_sgd(model=...) needs a built model.")
        optimizer.build(model.trainable_variables)
    return optimizer
