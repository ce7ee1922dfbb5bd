"""Segmentation losses for SPGNet.

The main class is `SegmentationCrossEntropy`, a per-pixel softmax
cross-entropy on logits that

- skips pixels whose label equals `ignore_index` (255 by default),
- optionally weights every pixel by a per-class weight of its target class,
- optionally keeps only hard pixels (online hard example mining, OHEM, as in
  Table 8 of the SPGNet paper), and
- reports the same value whatever the number of replicas of a
  `tf.distribute` strategy (see "Reduction and distribution" below).

`deep_supervision_losses` builds the `loss`/`loss_weights` dicts for
`model.compile` for a model whose outputs are `"prediction"` plus the
earlier stages' logits (`"stage1"`, `"stage2"`, ...).

Both are written in `keras.ops` and run on every Keras backend; TensorFlow and JAX give
the same value (tests/test_backend_agreement.py).

Reduction and distribution:
The loss is a *mean over kept pixels*, not a mean over images. Keras' built-in
reductions cannot express that (they divide by the batch size and, under a
`tf.distribute` strategy, additionally by the number of replicas), so
`SegmentationCrossEntropy.__call__` does its own reduction:

1. every kept pixel `i` of the replica's local batch gets a weight `w_i`
   (1, times its class weight, times `sample_weight` if given) and a
   cross-entropy `ce_i`;
2. the replica computes `local_sum = sum_i w_i * ce_i` and
   `local_den = sum_i w_i`;
3. `local_den` is summed over all replicas in sync
   (`ReplicaContext.all_reduce`) into `global_den`; with one replica (or
   outside any strategy) `global_den == local_den`;
4. the returned value is `local_sum / global_den`.

With one replica this is exactly the weighted mean over the batch's kept
pixels. With `R` replicas the returned values sum, over replicas, to the
weighted mean over the kept pixels of the *global* batch, which is the
convention Keras uses for its own losses (a replica returns its share of the
global loss, gradients are summed across replicas), so the gradients equal the
single-device ones. Keras' loss trackers multiply the per-replica value by
`R` (`unscale_loss_for_distribution`), weight it by the local batch size
and sum over replicas; when the global batch splits evenly over replicas
(the normal case, and the only case for `drop_remainder=True` pipelines)
`model.fit`/`model.evaluate` therefore report the same loss as on a single
device. Only an uneven final partial batch gives a (slightly) different
report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import keras
from keras import ops

from spgnet_keras.constants import DEFAULT_STAGE_WEIGHT, IGNORE_LABEL, PREDICTION
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.labels import check_label_range
from spgnet_keras.models.outputs import stage_loss_weights
from spgnet_keras.ohem import ohem_mask, validate_ohem

__all__ = [
    "DEFAULT_STAGE_WEIGHT",
    "SegmentationCrossEntropy",
    "deep_supervision_losses",
]

_PACKAGE = "spgnet_keras"


def _cross_replica_sum(value):
    """Sums `value` over the replicas in sync (identity with one replica).

    Only TensorFlow's `tf.distribute` runs a loss per replica; Keras' JAX distribution
    computes it once on the global (sharded) batch, so there `value` is already global.

    Args:
        value: A float tensor computed independently on every replica.

    Returns:
        The sum over replicas when called inside a multi-replica
        `strategy.run`; `value` unchanged otherwise (no strategy, one
        replica, cross-replica context where the batch is already global, or
        another backend).
    """
    if keras.backend.backend() != "tensorflow":
        return value
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return value
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


def _squeeze_channel(labels, logits_rank: int):
    """Turns labels of shape `(B, H, W, 1)` into `(B, H, W)`."""
    if ops.ndim(labels) == logits_rank:
        labels = ops.squeeze(labels, axis=-1)
    return labels


def _nan_if(bad_count, value):
    """Returns NaN instead of `value` when `bad_count > 0` (XLA fallback)."""
    return ops.where(bad_count > 0, ops.cast(float("nan"), value.dtype), value)


def _sample_weight_map(sample_weight, pixel_shape_rank: int):
    """Reshapes a per-image or per-pixel sample weight to broadcast to (B, H, W).

    Args:
        sample_weight: Tensor of shape `()`, `(B,)`, `(B, 1)`,
            `(B, H, W)` or `(B, H, W, 1)`.
        pixel_shape_rank: Rank of the per-pixel map (3 for `(B, H, W)`).

    Returns:
        A float32 tensor broadcastable to the per-pixel map.
    """
    sw = ops.cast(sample_weight, "float32")
    rank = ops.ndim(sw)
    if rank == pixel_shape_rank + 1:
        sw = ops.squeeze(sw, axis=-1)
    elif 0 < rank < pixel_shape_rank:
        sw = ops.reshape(sw, (-1,) + (1,) * (pixel_shape_rank - 1))
    return sw


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SegmentationCrossEntropy(keras.losses.Loss):
    """Per-pixel softmax cross-entropy on logits with ignore label and OHEM.

    `y_true` holds integer labels of shape `(B, H, W)` or `(B, H, W, 1)`
    (any int or float dtype; they are cast to int32) and `y_pred` float
    logits of shape `(B, H, W, C)` at the same resolution. Logits are cast to
    float32 before the softmax, so the loss is safe under mixed precision.

    Pixels labelled `ignore_index` are skipped. Any other label outside
    `[0, C)` raises an error whose message names the allowed range and the
    offending values (`tf.errors.InvalidArgumentError` on TensorFlow,
    `InvalidInputError` on other backends in eager, a `JaxRuntimeError` around it
    under `jax.jit`; under TensorFlow's XLA, where assertions are compiled away, the
    loss becomes NaN instead of silently wrong). See `labels.check_label_range`.

    The value is the weighted mean over *kept* pixels:

    ```
    loss = sum_i w_i * ce_i / sum_i w_i
    ```

    where `i` runs over kept pixels (not ignored and, with OHEM, selected as
    hard), `ce_i = -log softmax(logits_i)[y_i]` and
    `w_i = class_weights[y_i] * sample_weight_i` (each factor 1 when not
    given). Pixels that are not kept count in neither the numerator nor the
    denominator. `sample_weight` may be per image `(B,)` or per pixel
    `(B, H, W)`; since it appears in the denominator too, a constant weight
    has no effect (it only re-weights pixels relative to each other). A batch
    without kept pixels gives 0. See the module docstring for how the value
    is reduced under `tf.distribute` (replica-count independent).

    OHEM (online hard example mining) is done per image, so its selection does
    not depend on how a batch is split over replicas. Two modes:

    - `ohem_threshold=t` (e.g. 0.7): keep the valid pixels whose softmax
      probability of the true class is below `t` (computed as
      `ce > -log t`); if that is fewer than `ohem_min_kept` pixels of the
      image, keep its `ohem_min_kept` hardest valid pixels instead (all valid
      pixels if the image has fewer; pixels tied with the last one are kept
      too). Note that PyTorch implementations (PSPNet/OCNet/HRNet
      `OhemCrossEntropy`) apply `min_kept` to the whole per-GPU batch;
      divide their value by the per-GPU batch size to get a per-image value.
    - `ohem_top_k=f` in `(0, 1]`: keep the `ceil(f * n_valid)` hardest
      valid pixels of each image (ties with the last one kept too).

    Args:
        ignore_index: int. Label value to skip. Defaults to
            `constants.IGNORE_LABEL` (255).
        class_weights: list of float. Optional `C` non-negative weights; pixel
            `i` is weighted by `class_weights[y_i]`.
        ohem_threshold: float. Optional probability threshold in `(0, 1]` enabling
            threshold OHEM.
        ohem_min_kept: int. Minimum number of hardest pixels kept per image with
            threshold OHEM (0 or None = no minimum). Requires
            `ohem_threshold`.
        ohem_top_k: float. Optional fraction in `(0, 1]` enabling top-k OHEM.
            Mutually exclusive with `ohem_threshold`.
        name: str. Loss name.

    Raises:
        InvalidInputError: For inconsistent or out-of-range OHEM/class-weight
            arguments (a `ValueError`).

    Example:

    ```python
    loss = SegmentationCrossEntropy(ohem_threshold=0.7, ohem_min_kept=100_000)
    value = loss(masks, logits)  # masks (B, H, W), 255 ignored; logits (B, H, W, C)
    ```
    """

    def __init__(
        self,
        ignore_index: int = IGNORE_LABEL,
        class_weights: Sequence[float] | None = None,
        ohem_threshold: float | None = None,
        ohem_min_kept: int | None = 0,
        ohem_top_k: float | None = None,
        name: str = "segmentation_cross_entropy",
    ):
        ohem_min_kept = int(ohem_min_kept or 0)
        # reduction is irrelevant: __call__ performs its own reduction.
        super().__init__(name=name, reduction="sum", dtype="float32")
        self.ignore_index = int(ignore_index)
        self.class_weights = _validate_class_weights(class_weights)
        validate_ohem(ohem_threshold, ohem_min_kept, ohem_top_k)
        self.ohem_threshold = None if ohem_threshold is None else float(ohem_threshold)
        self.ohem_min_kept = int(ohem_min_kept)
        self.ohem_top_k = None if ohem_top_k is None else float(ohem_top_k)

    # ------------------------------------------------------------------ API
    def __call__(self, y_true, y_pred, sample_weight=None):
        """Computes the loss (see class docstring for the exact reduction).

        Args:
            y_true: Labels `(B, H, W)` or `(B, H, W, 1)`.
            y_pred: Logits `(B, H, W, C)`.
            sample_weight: Optional per-image `(B,)` or per-pixel
                `(B, H, W)` weights.

        Returns:
            A float32 scalar: `local_sum / global_den`.
        """
        with keras.name_scope(self.name):
            weighted_sum, weight_total, bad_count = self.sum_and_weight(
                y_true, y_pred, sample_weight
            )
            global_total = _cross_replica_sum(ops.stop_gradient(weight_total))
            loss = ops.divide_no_nan(weighted_sum, global_total)
            return _nan_if(bad_count, loss)

    def call(self, y_true, y_pred):
        """Returns the loss without sample weights (same as `__call__`)."""
        return self(y_true, y_pred)

    def sum_and_weight(self, y_true, y_pred, sample_weight=None):
        """Returns the un-normalised pieces of the loss for the local batch.

        Args:
            y_true: Labels `(B, H, W)` or `(B, H, W, 1)`.
            y_pred: Logits `(B, H, W, C)`.
            sample_weight: Optional per-image or per-pixel weights.

        Returns:
            `(weighted_sum, weight_total, bad_count)`: float32 scalars
            `sum_i w_i * ce_i` and `sum_i w_i` over kept pixels, and the
            int32 number of out-of-range labels (0 unless assertions are
            compiled away).
        """
        ce, weights, bad_count = self.pixel_losses(y_true, y_pred, sample_weight)
        weighted_sum = ops.sum(weights * ce)
        weight_total = ops.sum(weights)
        return weighted_sum, weight_total, bad_count

    def pixel_losses(self, y_true, y_pred, sample_weight=None):
        """Per-pixel cross-entropy and weights (0 for pixels not kept).

        Args:
            y_true: Labels `(B, H, W)` or `(B, H, W, 1)`.
            y_pred: Logits `(B, H, W, C)`.
            sample_weight: Optional per-image or per-pixel weights.

        Returns:
            `(ce, weights, bad_count)` where `ce` and `weights` are
            float32 `(B, H, W)` maps.
        """
        logits = ops.cast(y_pred, "float32")
        labels = _squeeze_channel(ops.cast(y_true, "int32"), ops.ndim(logits))
        num_classes = ops.shape(logits)[-1]
        self._check_class_weights(num_classes)

        kept, bad_count = check_label_range(
            labels, num_classes, self.ignore_index, type(self).__name__
        )
        safe_labels = ops.where(kept, labels, ops.zeros_like(labels))
        ce = ops.sparse_categorical_crossentropy(safe_labels, logits, from_logits=True)
        weights = ops.cast(kept, "float32")
        if sample_weight is not None:
            weights = weights * _sample_weight_map(sample_weight, ops.ndim(labels))
            kept = ops.logical_and(kept, weights > 0)
        if self.class_weights is not None:
            class_w = ops.convert_to_tensor(self.class_weights, "float32")
            weights = weights * ops.take(class_w, safe_labels)
        if self.ohem_threshold is not None or self.ohem_top_k is not None:
            hard = ops.stop_gradient(ohem_mask(ops.stop_gradient(ce), kept, self.ohem_threshold, self.ohem_min_kept,
                                               self.ohem_top_k))
            weights = weights * ops.cast(hard, "float32")
        return ce, weights, bad_count

    # -------------------------------------------------------------- helpers
    def _check_class_weights(self, num_classes) -> None:
        if self.class_weights is None or not isinstance(num_classes, int):
            return
        if len(self.class_weights) != num_classes:
            raise InvalidInputError(
                f"{type(self).__name__}: class_weights has "
                f"{len(self.class_weights)} entries but the logits have "
                f"{num_classes} classes."
            )

    def get_config(self):
        """Returns the constructor arguments (JSON-serialisable)."""
        return {
            "name": self.name,
            "ignore_index": self.ignore_index,
            "class_weights": (
                None if self.class_weights is None else list(self.class_weights)
            ),
            "ohem_threshold": self.ohem_threshold,
            "ohem_min_kept": self.ohem_min_kept,
            "ohem_top_k": self.ohem_top_k,
        }

    @classmethod
    def from_config(cls, config):
        """Builds the loss from `get_config` output."""
        config = dict(config)
        config.pop("reduction", None)
        config.pop("dtype", None)
        return cls(**config)


def _validate_class_weights(class_weights) -> tuple[float, ...] | None:
    if class_weights is None:
        return None
    weights = tuple(float(w) for w in class_weights)
    if not weights:
        raise InvalidInputError("class_weights must be None or a non-empty sequence.")
    if any(w < 0 or not math.isfinite(w) for w in weights):
        raise InvalidInputError(f"class_weights must be finite and >= 0, got {weights}.")
    return weights


def deep_supervision_losses(
    output_names: Sequence[str],
    stage_weight: float | Mapping[str, float] = DEFAULT_STAGE_WEIGHT,
    prediction_name: str = PREDICTION,
    **loss_kwargs,
) -> tuple[dict, dict]:
    """Builds `loss` and `loss_weights` dicts for a deeply supervised model.

    Every output gets its own `SegmentationCrossEntropy` (same
    `loss_kwargs`); `prediction_name` gets weight 1.0 and every other
    output (`"stage1"`, `"stage2"`, ...) `stage_weight` (default
    `DEFAULT_STAGE_WEIGHT`, 1.0: the paper's plain sum). The total loss is
    `L_prediction + sum_s stage_weight_s * L_s`.

    Example:

    ```python
    losses, weights = deep_supervision_losses(["prediction", "stage1"])
    model.compile(optimizer, loss=losses, loss_weights=weights)
    ```

    Args:
        output_names: The keys of the model's output dict. (For a functional
            model with dict outputs, Keras 3's `model.output_names` lists
            the *layer* names, which need not equal the dict keys; the loss
            dict must be keyed like the output dict.)
        stage_weight: Weight of each earlier-stage output, or a mapping from
            output name to weight (missing names get
            `DEFAULT_STAGE_WEIGHT`).
        prediction_name: Name of the final output (weight 1.0).
        **loss_kwargs: Passed to `SegmentationCrossEntropy`.

    Returns:
        `(losses, loss_weights)`, two dicts keyed by output name.

    Raises:
        ValueError: If `prediction_name` is not among `output_names` or a
            name is duplicated.
    """
    weights = stage_loss_weights(output_names, stage_weight, prediction_name)
    losses = {name: SegmentationCrossEntropy(name=f"{name}_ce", **loss_kwargs) for name in weights}
    return losses, weights
