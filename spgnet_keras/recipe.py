"""The paper's training recipe (Sec 4.2) as `model.compile` arguments, on any Keras backend.

SGD with momentum and coupled weight decay (`spgnet_keras.optimizers`), poly decay
(`spgnet_keras.schedules`), the deep-supervision cross-entropy with OHEM and class weights
(`spgnet_keras.losses`) and the mIoU metric (`spgnet_keras.metrics`): all `keras.ops`, so
this module imports no TensorFlow and the recipe compiles on TensorFlow and JAX alike
(tests/models/test_backends.py). `spgnet_keras.training` re-exports it.
"""

from spgnet_keras.constants import PREDICTION
from spgnet_keras.losses import deep_supervision_losses
from spgnet_keras.models.outputs import default_metrics
from spgnet_keras.optimizers import build_sgd
from spgnet_keras.schedules import PolyDecay

__all__ = ["recipe_compile_arguments"]


def recipe_compile_arguments(model, optimizer_config, loss_config, max_steps):
    """`model.compile` arguments of the paper's recipe (Sec 4.2): SGD with poly decay, the
    cross-entropy (+OHEM, class weights) on every output weighted by `stage_weight`, and
    the default mIoU metric. Use as `model.compile(**recipe_compile_arguments(...))`.

    Args:
        model: A model with dict outputs including `"prediction"` (an `SPGNet`).
        optimizer_config: `spgnet_keras.config.OptimizerConfig`.
        loss_config: `spgnet_keras.config.LossConfig` with `class_weights` a list or None
            (`"auto"` resolved by `spgnet_keras.training`).
        max_steps: int. Steps of the poly decay.

    Returns:
        A dict with `optimizer`, `loss`, `loss_weights` and `metrics`.
    """
    output_names = list(model.output.keys())
    losses, weights = deep_supervision_losses(
        output_names,
        stage_weight=loss_config.stage_weight,
        ohem_threshold=loss_config.ohem_threshold,
        ohem_min_kept=loss_config.ohem_min_kept,
        ohem_top_k=loss_config.ohem_top_k,
        class_weights=loss_config.class_weights,
    )
    schedule = PolyDecay(
        optimizer_config.learning_rate,
        max_steps=max_steps,
        power=optimizer_config.power,
        warmup_steps=optimizer_config.warmup_steps,
    )
    optimizer = build_sgd(schedule, momentum=optimizer_config.momentum, weight_decay=optimizer_config.weight_decay,
                          weight_decay_mode=optimizer_config.weight_decay_mode,
                          decay_variables=optimizer_config.decay_variables)
    metrics = default_metrics(output_names, model.output[PREDICTION].shape[-1])
    return dict(optimizer=optimizer, loss=losses, loss_weights=weights, metrics=metrics)
