"""SGD with momentum and weight decay on convolution/dense kernels only.

Keras' ``SGD(weight_decay=wd)`` applies *decoupled* weight decay: before each
gradient step every decayed variable is shrunk as ``w -= lr * wd * w`` (``lr``
being the current, possibly scheduled, learning rate), and the momentum buffer
only sees the loss gradient. PyTorch's ``SGD(weight_decay=wd)`` is *coupled*
L2: it adds ``wd * w`` to the gradient, which then also flows through the
momentum buffer. Without momentum the two are identical; with momentum ``m``
the PyTorch decay is amplified by momentum (about ``1 / (1 - m)``, i.e. 10x
for ``m = 0.9``, in steady state). To mimic a PyTorch recipe's effective decay
strength, scale ``weight_decay`` accordingly (e.g. ``wd / (1 - m)``) or accept
the difference. (Keras' momentum also folds the learning rate into the
velocity, ``v = m v - lr g``, whereas PyTorch uses ``v = m v + g``, ``w -= lr
v``; the two agree for a constant learning rate and differ slightly while a
schedule changes it.)
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

__all__ = ["KernelDecaySGD", "build_sgd"]

_PACKAGE = "spgnet_keras"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class KernelDecaySGD(keras.optimizers.SGD):
    """Keras SGD whose weight decay skips biases and normalisation parameters.

    A trainable variable is decayed iff its rank is at least
    ``decay_min_rank`` (2 by default: Conv/Dense/depthwise kernels are decayed;
    biases, BatchNormalization/LayerNormalization gamma and beta are not) and
    its path (e.g. ``"conv2d/kernel"``) contains none of the substrings in
    ``exclude_names``. The exclusion is computed in :meth:`build` from the
    variables themselves, through Keras' ``exclude_from_weight_decay``, and the
    rule lives in the config, so it survives ``get_config``/``from_config``
    and ``.keras`` save/load.

    Args:
        learning_rate: Float or ``LearningRateSchedule`` (e.g.
            :class:`spgnet_keras.schedules.PolyDecay`).
        momentum: Momentum in ``[0, 1]``.
        nesterov: Whether to use Nesterov momentum.
        weight_decay: Decoupled decay factor (``None`` or 0 disables it).
        decay_min_rank: Minimum variable rank that is decayed.
        exclude_names: Extra substrings of variable paths to exclude.
        **kwargs: Other ``keras.optimizers.SGD`` arguments (``clipnorm``,
            ``name``, ...).
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float | None = 1e-4,
        decay_min_rank: int = 2,
        exclude_names: Sequence[str] | None = None,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            momentum=float(momentum),
            nesterov=nesterov,
            weight_decay=weight_decay or None,
            **kwargs,
        )
        self.decay_min_rank = int(decay_min_rank)
        self.exclude_names = [str(n) for n in (exclude_names or [])]

    def uses_weight_decay(self, variable) -> bool:
        """Whether ``variable`` is decayed (ignores ``weight_decay`` being 0).

        Args:
            variable: A Keras (or tf) variable.

        Returns:
            True iff the rank is >= ``decay_min_rank`` and the path contains
            none of ``exclude_names``.
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

    def get_config(self):
        """Returns the SGD config plus ``decay_min_rank``/``exclude_names``."""
        config = super().get_config()
        config.update(
            {
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
    **kwargs,
) -> KernelDecaySGD:
    """Builds the paper's SGD: momentum 0.9, weight decay 1e-4 on kernels only.

    Args:
        learning_rate: Float or ``LearningRateSchedule``.
        momentum: Momentum.
        weight_decay: Decoupled weight decay (see module docstring for how it
            differs from PyTorch's coupled L2).
        model: Optional built model; if given, the optimizer is built on its
            trainable variables right away (so ``uses_weight_decay`` and the
            optimizer state are ready). Call this under the same
            ``tf.distribute`` strategy scope as the model. If omitted, Keras
            builds the optimizer at the first training step.
        nesterov: Whether to use Nesterov momentum.
        exclude_names: Extra substrings of variable paths not to decay.
        **kwargs: Passed to :class:`KernelDecaySGD` (e.g. ``clipnorm``).

    Returns:
        A :class:`KernelDecaySGD`.

    Raises:
        ValueError: If ``model`` is given but not built.
    """
    optimizer = KernelDecaySGD(
        learning_rate=learning_rate,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        exclude_names=exclude_names,
        **kwargs,
    )
    if model is not None:
        if not model.built:
            raise ValueError("build_sgd(model=...) needs a built model.")
        optimizer.build(model.trainable_variables)
    return optimizer
