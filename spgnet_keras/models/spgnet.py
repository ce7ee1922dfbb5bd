"""The SPGNet model (Cheng et al., "SPGNet: Semantic Prediction Guidance for Scene Parsing", ICCV 2019): its
arguments, config, presets and training defaults. The graph is `models/graph.py`, the outputs' names, loss weights
and metric `models/outputs.py`, loading saved weights `models/checkpoints.py`."""

import inspect
import warnings

import keras

from spgnet_keras.classes import check_class_names, check_num_classes, check_palette
from spgnet_keras.constants import PREDICTION
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.layers.common import LayerSettings
from spgnet_keras.layers.pooling import check_pooling
from spgnet_keras.layers.spg import EXCITATIONS
from spgnet_keras.models.checkpoints import is_saved_preset, load_preset_weights, load_saved_preset, save_preset_folder
from spgnet_keras.models.graph import (
    GUIDANCES,
    PREPROCESSING,
    GraphConfig,
    build_graph,
    check_choice,
    check_decoder_channels,
    check_image_shape,
    resolve_backbones,
    resolve_sync_batchnorm,
)
from spgnet_keras.models.outputs import (
    default_loss,
    default_metric,
    default_metrics,
    drop_channel_axis,
    stage_loss_weights,
    stage_output_name,
    targets_per_output,
)
from spgnet_keras.models.presets import PRESETS, preset_arguments

__all__ = [
    "PREDICTION", "PREPROCESSING", "SPGNET_ARGUMENTS", "SPGNet", "check_decoder_channels", "check_takes_raw_images",
    "default_loss", "default_metric", "default_metrics", "drop_channel_axis", "stage_loss_weights",
    "stage_output_name", "targets_per_output", "with_preprocessing",
]

# Keyword arguments `SPGNet(...)` passes on to `keras.Model`; any other is a TypeError.
_MODEL_KWARGS = ("name", "dtype", "trainable")
# Deprecated argument names -> their current names.
_RENAMED = (("input_shape", "image_shape"),)  # (old, new) argument names: read-only


@keras.saving.register_keras_serializable(package="spgnet_keras")
class SPGNet(keras.Model):
    """Multi-stage encoder-decoder network with Semantic Prediction Guidance.

    Each stage is a ResNet encoder (features at strides 4, 8, 16, 32 and a global
    average pooled vector) and a decoder of upsample modules (Sec 3.2-3.3). The first
    stage starts from the image through the ResNet stem; every later stage starts at
    the first residual stack, at stride 4, from the SPG output of the stage before
    (Sec 3.4), and adds the previous stage's encoder/decoder features at each scale
    (cross-stage feature aggregation, Fig 2c).

    Outputs (a dict of float32 logits at the input resolution, channels last):
    - `"prediction"`: the last stage's prediction.
    - `"stage1"`, ..., `"stage{N-1}"`: the per-class logits x_l of each earlier stage,
      for deep supervision; absent when `stage_supervision=False`.

    Inputs are RGB images in [0, 255] (uint8 or float), as `keras.applications` models
    with `include_preprocessing=True` take them: the first layer ("preprocessing", a
    `keras.layers.Rescaling` by the ImageNet mean/std) normalises them. Every
    tool of the package (data pipeline, inference, evaluation, export) feeds 0-255 RGB.

    `compile()` without arguments sets the paper's training objective (Sec 3.4, 4.2):
    cross-entropy with ignore label 255 on every output, an mIoU metric on
    `"prediction"` (logged as `prediction_miou` for every preset), and Adam; `fit` takes
    `(image, mask)` pairs, the one mask supervising every output (see `compile` and
    `compute_loss`).

    Args:
        num_classes: int. Number of semantic classes C.
        backbones: str or sequence of str. Encoder name ("resnet18", "resnet34",
            "resnet50", "resnet101", "resnet152") used by every stage, or one name per
            stage (Table 6: `("resnet18", "resnet50")`).
        num_stages: int. Number of stages when `backbones` is a single name.
        decoder_channels: int. Decoder width D (Table 9).
        image_shape: tuple. (height, width, channels); height and width may be None
            (any size). Inputs are padded inside the model (bottom/right, with the mean
            colour) to multiples of the output stride 32, and the logits cropped back.
            `input_shape` is a deprecated alias.
        guidance: str. What connects the stages: "spg" (Semantic Prediction Guidance),
            "se" / "ge" (squeeze- / gather-and-excite, Table 4) or "none" (decoder
            features passed on, Table 3 baseline).
        spg_excitation: str. "sigmoid", "softmax" or "sum" (Table 3).
        spg_identity: bool. Whether to keep SPG's identity path (Table 3, "Id.").
        stage_supervision: bool. Whether earlier stages' logits are outputs (Table 3, "Sup.").
        cross_stage_aggregation: bool. Whether to add the previous stage's features to the encoder.
        bottleneck_ratio: float. Inner width of the decoder's residual blocks, a fraction of D.
        head_conv: bool. Whether a 3x3 conv + BN + ReLU runs on the last upsample module's
            output, before the classifier (the reading of the paper that matches its
            #FLOPs; see `docs/architecture.md`).
        sync_batchnorm: bool or None. Synchronized BatchNormalization. None (default)
            turns it on when the model is built under a `tf.distribute` strategy with
            more than one replica.
        include_preprocessing: bool. Whether to normalise the 0-255 RGB input inside the
            model (True, default). False builds a model that takes ImageNet-normalised
            input ((x - mean) / std, `spgnet_keras.constants`); the package's tools then
            refuse it (convert it with `spgnet_keras.models.with_preprocessing`).
        folded_batchnorm: bool. Whether to build the inference graph with every BatchNorm
            folded into the convolution before it (no BatchNorm layers; convs with
            biases). Made by `spgnet_keras.export.fold_batchnorm(model)`, which writes the
            folded weights; not meant for training.
        test_pooling: str. How the decoder's global average pooling (Sec 3.2) and the SE
            transition's squeeze pool at inference: "global" (default; as in training) or
            "crop" (In-Place ABN's test-time pooling: the mean over a window the size of
            the training crop's feature map, see `spgnet_keras.layers.pooling`). Training
            always pools globally.
        test_pooling_crop: tuple of 2 ints. The training crop (height, width) in pixels, for "crop".
        class_names: list of str. Optional name of each class (one per class, in label
            order): kept in the config, so `.keras` files, fine-tuned models and exports
            know what they predict; `spgnet predict`, `evaluate` and the figures use them.
        palette: list of (r, g, b). Optional colour of each class (0-255), kept likewise.
        **kwargs: `name`, `dtype` (a dtype policy given to every layer; the input
            normalisation and the logits stay float32) or `trainable` (`keras.Model`
            arguments); any other keyword is a TypeError.

    Example:

    ```python
    model = SPGNet(11, backbones=("resnet18", "resnet18"), decoder_channels=64)
    model.compile()
    model.fit(images_uint8, masks, epochs=10)   # masks: (B, H, W), 255 = ignore
    classes = model.predict(images_uint8)["prediction"].argmax(-1)
    ```
    """

    def __init__(
        self,
        num_classes,
        backbones=("resnet50", "resnet50"),
        num_stages=None,
        decoder_channels=256,
        image_shape=(None, None, 3),
        guidance="spg",
        spg_excitation="sigmoid",
        spg_identity=True,
        stage_supervision=True,
        cross_stage_aggregation=True,
        bottleneck_ratio=0.25,
        head_conv=True,
        sync_batchnorm=None,
        include_preprocessing=True,
        folded_batchnorm=False,
        test_pooling="global",
        test_pooling_crop=None,
        class_names=None,
        palette=None,
        **kwargs,
    ):
        if "input_shape" in kwargs:
            warnings.warn("SPGNet(input_shape=...) is deprecated; pass image_shape=... (keras-hub's name).",
                          DeprecationWarning, stacklevel=2)
            image_shape = kwargs.pop("input_shape")
        check_model_kwargs(kwargs)
        stage_backbones = resolve_backbones(backbones, num_stages)
        check_num_classes(num_classes)
        check_decoder_channels(decoder_channels)
        image_shape = check_image_shape(image_shape)
        check_choice(guidance, GUIDANCES, "guidance")
        check_choice(spg_excitation, EXCITATIONS, "spg_excitation")
        pooling_crop = check_pooling(test_pooling, test_pooling_crop)
        class_names = None if class_names is None else check_class_names(class_names, num_classes)
        palette = None if palette is None else check_palette(palette, num_classes)
        dtype = kwargs.pop("dtype", None)
        # Every layer gets this policy (Keras' global policy only when no `dtype` is given).
        policy = keras.dtype_policies.get(dtype) if dtype is not None else keras.config.dtype_policy()
        settings = LayerSettings(dtype=policy, sync_batchnorm=resolve_sync_batchnorm(sync_batchnorm),
                                 folded_batchnorm=bool(folded_batchnorm))

        # === Layers and functional model ===
        inputs, outputs = build_graph(GraphConfig(
            num_classes=num_classes, stage_backbones=stage_backbones, decoder_channels=decoder_channels,
            image_shape=image_shape, guidance=guidance, spg_excitation=spg_excitation, spg_identity=spg_identity,
            stage_supervision=stage_supervision, cross_stage_aggregation=cross_stage_aggregation,
            bottleneck_ratio=bottleneck_ratio, head_conv=head_conv, include_preprocessing=include_preprocessing,
            pooling_crop=pooling_crop, settings=settings,
        ))
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.dtype_policy = policy  # what get_config serialises (Functional drops `dtype`)

        # === Config ===
        self.num_classes = num_classes
        self.backbones = backbones if isinstance(backbones, str) else tuple(backbones)
        self.num_stages = num_stages
        self.decoder_channels = decoder_channels
        self.image_shape = image_shape
        self.guidance = guidance
        self.spg_excitation = spg_excitation
        self.spg_identity = spg_identity
        self.stage_supervision = stage_supervision
        self.cross_stage_aggregation = cross_stage_aggregation
        self.bottleneck_ratio = bottleneck_ratio
        self.head_conv = head_conv
        self.sync_batchnorm = sync_batchnorm
        self.include_preprocessing = bool(include_preprocessing)
        self.folded_batchnorm = bool(folded_batchnorm)
        self.test_pooling = test_pooling
        self.test_pooling_crop = pooling_crop
        self.class_names = class_names
        self.palette = palette
        self.stage_backbones = stage_backbones

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "num_classes": self.num_classes,
            "backbones": self.backbones if isinstance(self.backbones, str) else list(self.backbones),
            "num_stages": self.num_stages,
            "decoder_channels": self.decoder_channels,
            "image_shape": list(self.image_shape),
            "guidance": self.guidance,
            "spg_excitation": self.spg_excitation,
            "spg_identity": self.spg_identity,
            "stage_supervision": self.stage_supervision,
            "cross_stage_aggregation": self.cross_stage_aggregation,
            "bottleneck_ratio": self.bottleneck_ratio,
            "head_conv": self.head_conv,
            "sync_batchnorm": self.sync_batchnorm,
            "include_preprocessing": self.include_preprocessing,
            "folded_batchnorm": self.folded_batchnorm,
            "test_pooling": self.test_pooling,
            "test_pooling_crop": None if self.test_pooling_crop is None else list(self.test_pooling_crop),
            "class_names": None if self.class_names is None else list(self.class_names),
            "palette": None if self.palette is None else [list(colour) for colour in self.palette],
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for old, new in _RENAMED:  # configs saved before the rename (the old key wins if both)
            if old in config:
                config[new] = config.pop(old)
        if "include_preprocessing" not in config:
            # Saved by spgnet_keras 0.1, whose models took normalised input. The weights
            # are the same; the model now normalises 0-255 input itself.
            warnings.warn(
                "This SPGNet was saved by spgnet_keras 0.1, whose models took ImageNet-normalised "
                "input. It is loaded with the current convention: RGB in [0, 255], normalised by "
                "the model's first layer (same weights, same predictions on 0-255 images). Re-save "
                "it with model.save() to silence this warning.",
                stacklevel=2,
            )
            config["include_preprocessing"] = True
        return cls(**config)

    # === Presets ===

    presets = PRESETS
    """Preset name -> `{"metadata": {"description", ...}, "config": SPGNet arguments}` (as keras-hub)."""

    @classmethod
    def from_preset(cls, preset, num_classes=None, weights=None, **overrides):
        """Builds a preset architecture and loads weights into it.

        Args:
            preset: str or `Path`. A name from `SPGNet.presets` (e.g. "spgnet_r50x2_256",
                Table 1), or, as in keras-hub, a saved SPGNet: the path of a `.keras` file
                or of a folder written by `save_to_preset`; its architecture and weights
                are loaded (`weights` stays None) and re-headed when `num_classes` differs.
            num_classes: int. Number of classes. Required unless `weights` (or `preset`)
                is a saved SPGNet, whose class count, class names and palette are then
                kept; with another class count the new head starts without names unless
                `class_names=` / `palette=` are given.
            weights: str or None. None (random initialisation: no SPGNet checkpoints are
                published), "imagenet" (every encoder from keras-hub's ImageNet ResNet
                presets; needs `pip install keras-hub` and a network to download them), or
                the path of a saved SPGNet (`.keras`, or `.weights.h5` saved from the same
                preset). When the saved model has another class count than `num_classes`,
                the class-dependent layers (classifiers, SPG's logits and attention convs)
                keep their fresh initialisation and everything else is loaded
                (fine-tuning to new classes).
            **overrides: other `SPGNet` arguments replacing the preset's (e.g.
                `decoder_channels`, `image_shape`); an unknown keyword is a TypeError.

        Returns:
            An `SPGNet`.
        """
        overrides = renamed_arguments(overrides)
        check_argument_names(overrides)
        if is_saved_preset(preset):
            return load_saved_preset(cls, preset, num_classes, weights, overrides)
        arguments = {**preset_arguments(preset), **overrides}
        return load_preset_weights(cls, arguments, num_classes, weights)

    def save_to_preset(self, preset_dir, overwrite=False):
        """Saves this model as a preset folder that `SPGNet.from_preset(preset_dir)` loads.

        keras-hub's layout: `config.json`, `model.weights.h5`, `metadata.json`.

        Args:
            preset_dir: str or `Path`. The folder.
            overwrite: bool. Whether an existing preset there is replaced.
        """
        return save_preset_folder(self, preset_dir, overwrite=overwrite)

    # === Training defaults: compile(), compute_loss() ===

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        *,
        metrics="auto",
        loss_weights=None,
        ohem_threshold=None,
        ohem_min_kept=0,
        **kwargs,
    ):
        """`keras.Model.compile` with SPGNet's defaults for `optimizer`, `loss`, `metrics`.

        Explicit values replace the defaults and nothing is added to them. Every argument
        after `loss` is keyword-only (`keras.Model.compile`'s third positional argument is
        `loss_weights`, so a positional `metrics` would be ambiguous).

        Args:
            optimizer: str or `keras.optimizers.Optimizer`. "auto"
                (`keras.optimizers.Adam(1e-3)`, which trains SPGNet from scratch or from
                ImageNet encoders without tuning; the paper's recipe, SGD with poly decay,
                is what `spgnet train` uses), or any Keras optimizer.
            loss: str, loss or dict. "auto": per-pixel softmax cross-entropy on logits
                with ignore label 255 on every output
                (`spgnet_keras.models.outputs.default_loss`), the earlier stages weighted
                by `DEFAULT_STAGE_WEIGHT` (the paper's plain sum). A single Keras loss
                applies to every output alike; a dict keyed by output name applies per
                output.
            metrics: str, list or dict. "auto": mean IoU (ignore label 255) on
                `"prediction"`, logged as `prediction_miou` (`val_prediction_miou`) for
                every number of stages. Or Keras metrics as usual.
            loss_weights: dict. Per-output weights keyed by output name. Default with
                `loss="auto"`: `stage_loss_weights` (1 for `"prediction"`,
                `DEFAULT_STAGE_WEIGHT` for stages).
            ohem_threshold: float. Online hard example mining for `loss="auto"` (Table 8):
                keep pixels whose true-class probability is below this (e.g. 0.7).
            ohem_min_kept: int. With `ohem_threshold`, at least this many hardest pixels
                per image are kept.
            **kwargs: other `keras.Model.compile` arguments (`jit_compile`, ...).
        """
        if (ohem_threshold is not None or ohem_min_kept) and loss != "auto":
            raise InvalidInputError(
                "`ohem_threshold`/`ohem_min_kept` configure the default loss (loss='auto'); with your "
                "own loss, configure OHEM in it (e.g. spgnet_keras.losses.SegmentationCrossEntropy("
                "ohem_threshold=0.7))."
            )
        output_names = list(self.output)
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(learning_rate=1e-3)
        if loss == "auto":
            loss = {name: default_loss(ohem_threshold, ohem_min_kept) for name in output_names}
            if loss_weights is None:
                loss_weights = stage_loss_weights(output_names)
        if metrics == "auto":
            metrics = default_metrics(output_names, self.num_classes)
        super().compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        """Re-compiles a loaded model with its saved compile arguments (`keras.saving`)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Keras' loss with one mask supervising every output (deep supervision).

        `y` may be a mask `(B, H, W)` or `(B, H, W, 1)`, given to every output, or a
        dict with one target per output name.
        """
        y = targets_per_output(y, y_pred)
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Keras' metrics with the mask given to every output (see `compute_loss`)."""
        return super().compute_metrics(x, targets_per_output(y, y_pred), y_pred, sample_weight=sample_weight)

    def guidance_layer(self, stage=1):
        """The layer between stage `stage` and the next (an SPG layer for guidance="spg")."""
        if not 1 <= stage < len(self.stage_backbones):
            raise InvalidInputError(f"`stage` must be in [1, {len(self.stage_backbones) - 1}], got {stage!r}.")
        return self.get_layer(f"stage{stage}_{self.guidance}")


# The one list of SPGNet's own argument names (the constructor's), used by `from_preset`
# and `spgnet_keras.config` (model.arguments).
SPGNET_ARGUMENTS = tuple(
    name for name, parameter in inspect.signature(SPGNet.__init__).parameters.items()
    if name != "self" and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
)


def renamed_arguments(arguments):
    """`arguments` with deprecated names (`input_shape`) replaced by the current ones, with a warning."""
    arguments = dict(arguments)
    for old, new in _RENAMED:
        if old in arguments:
            warnings.warn(f"The SPGNet argument {old!r} is deprecated; use {new!r}.", DeprecationWarning,
                          stacklevel=3)
            arguments.setdefault(new, arguments.pop(old))
    return arguments


def check_model_kwargs(kwargs):
    """TypeError naming a keyword that is neither an SPGNet nor a keras.Model argument."""
    unknown = sorted(set(kwargs) - set(_MODEL_KWARGS))
    if unknown:
        raise TypeError(
            f"SPGNet() got an unexpected keyword argument {unknown[0]!r}; SPGNet takes "
            f"{', '.join(SPGNET_ARGUMENTS)} and the keras.Model arguments {', '.join(_MODEL_KWARGS)}."
        )


def check_argument_names(arguments):
    """TypeError for a key of `arguments` that SPGNet does not take."""
    check_model_kwargs({k: v for k, v in arguments.items() if k not in SPGNET_ARGUMENTS})


def with_preprocessing(model):
    """An SPGNet that takes RGB 0-255 with the weights of `model` (which may take normalised input).

    For a model built with `include_preprocessing=False`: the package's tools (data
    pipeline, inference, evaluation, export) all feed 0-255 RGB.
    """
    if not isinstance(model, SPGNet):
        raise InvalidInputError(f"Expected an SPGNet, got {type(model).__name__}.")
    if model.include_preprocessing:
        return model
    converted = SPGNet.from_config({**model.get_config(), "include_preprocessing": True})
    converted.set_weights(model.get_weights())
    return converted


def check_takes_raw_images(model):
    """`InvalidInputError` unless `model` takes RGB 0-255 (the package's one input convention)."""
    if getattr(model, "include_preprocessing", True) is False:
        raise InvalidInputError(
            "This SPGNet was built with include_preprocessing=False and takes normalised input, while "
            "spgnet_keras feeds RGB in [0, 255]; convert it with spgnet_keras.models.with_preprocessing(model)."
        )
