"""The SPGNet model (Cheng et al., "SPGNet: Semantic Prediction Guidance for Scene
Parsing", ICCV 2019)."""

import contextlib
import warnings

import keras

from spgnet_keras.classes import check_class_names, check_num_classes, check_palette
from spgnet_keras.constants import (
    DEFAULT_STAGE_WEIGHT,
    IGNORE_LABEL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MAX_DECODER_CHANNELS,
    OUTPUT_STRIDE,
    PREDICTION,
)
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.layers.common import batch_norm, check_positive_int, conv
from spgnet_keras.layers.common import folded_batchnorm as folded_batchnorm_scope
from spgnet_keras.layers.cross_stage import CrossStageAggregation
from spgnet_keras.layers.excitation import GatherExciteTransition, SqueezeExciteTransition, StageTransition
from spgnet_keras.layers.pooling import ContextPooling, check_pooling, crop_pool_size
from spgnet_keras.layers.resize import CropLike, PadToMultiple, ResizeLike
from spgnet_keras.layers.spg import EXCITATIONS, SemanticPredictionGuidance
from spgnet_keras.layers.upsample import UpsampleModule
from spgnet_keras.models.presets import PRESET_DESCRIPTIONS, preset_arguments
from spgnet_keras.models.resnet import STEM_CHANNELS, apply_stack, apply_stem, check_backbone_name

GUIDANCES = ("spg", "se", "ge", "none")
PREPROCESSING = "preprocessing"

# Keyword arguments `SPGNet(...)` passes on to `keras.Model`; any other is a TypeError.
_MODEL_KWARGS = ("name", "dtype", "trainable")


def stage_output_name(stage):
    """Name of the deep-supervision output of stage `stage` (1-based, not the last)."""
    return f"stage{stage}"


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
    `"prediction"`, and Adam; `fit` takes `(image, mask)` pairs, the one mask
    supervising every output (see `compile` and `compute_loss`).

    Example:

    ```python
    model = SPGNet(11, backbones=("resnet18", "resnet18"), decoder_channels=64)
    model.compile()
    model.fit(images_uint8, masks, epochs=10)   # masks: (B, H, W), 255 = ignore
    classes = model.predict(images_uint8)["prediction"].argmax(-1)
    ```

    Args:
        num_classes: number of semantic classes C.
        backbones: encoder name ("resnet18", "resnet34", "resnet50", "resnet101",
            "resnet152") used by every stage, or a sequence with one name per stage
            (Table 6: ("resnet18", "resnet50")).
        num_stages: number of stages when `backbones` is a single name.
        decoder_channels: decoder width D (Table 9).
        input_shape: (height, width, channels); height and width may be None (any
            size). Inputs are padded inside the model (bottom/right, with the mean colour)
            to multiples of the output stride 32, and the logits cropped back.
        guidance: what connects the stages: "spg" (Semantic Prediction Guidance),
            "se" / "ge" (squeeze- / gather-and-excite, Table 4) or "none" (decoder
            features passed on, Table 3 baseline).
        spg_excitation: "sigmoid", "softmax" or "sum" (Table 3).
        spg_identity: keep SPG's identity path (Table 3, "Id.").
        stage_supervision: earlier stages' logits are outputs (Table 3, "Sup.").
        cross_stage_aggregation: add the previous stage's features to the encoder.
        bottleneck_ratio: inner width of the decoder's residual blocks, a fraction of D.
        head_conv: a 3x3 conv + BN + ReLU on the last upsample module's output, before
            the classifier (the reading of the paper that matches its #FLOPs; see
            docs/architecture.md).
        sync_batchnorm: synchronized BatchNormalization. None (default) turns it on
            when the model is built under a `tf.distribute` strategy with more than one
            replica.
        include_preprocessing: normalise the 0-255 RGB input inside the model (True,
            default). False builds a model that takes ImageNet-normalised input
            ((x - mean) / std, `spgnet_keras.constants`); the package's tools then
            refuse it (convert it with `spgnet_keras.models.with_preprocessing`).
        folded_batchnorm: build the inference graph with every BatchNorm folded into the
            convolution before it (no BatchNorm layers; convs with biases). Made by
            `spgnet_keras.export.fold_batchnorm(model)`, which writes the folded weights;
            not meant for training.
        test_pooling: how the decoder's global average pooling (Sec 3.2) and the SE
            transition's squeeze pool at inference: "global" (default; as in training) or
            "crop" (In-Place ABN's test-time pooling: the mean over a window the size of the
            training crop's feature map, see `spgnet_keras.layers.pooling`). Training
            always pools globally.
        test_pooling_crop: the training crop (height, width) in pixels, for "crop".
        class_names: optional name of each class (one per class, in label order): kept in
            the config, so `.keras` files, fine-tuned models and exports know what they
            predict; `spgnet predict`, `evaluate` and the figures use them.
        palette: optional (r, g, b) colour of each class (0-255), kept likewise.
        **kwargs: `name`, `dtype` or `trainable` (`keras.Model` arguments); any other
            keyword is a TypeError.
    """

    def __init__(
        self,
        num_classes,
        backbones=("resnet50", "resnet50"),
        num_stages=None,
        decoder_channels=256,
        input_shape=(None, None, 3),
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
        check_model_kwargs(kwargs)
        stage_backbones = resolve_backbones(backbones, num_stages)
        check_num_classes(num_classes)
        check_decoder_channels(decoder_channels)
        check_input_shape(input_shape)
        check_choice(guidance, GUIDANCES, "guidance")
        check_choice(spg_excitation, EXCITATIONS, "spg_excitation")
        pooling_crop = check_pooling(test_pooling, test_pooling_crop)
        class_names = None if class_names is None else check_class_names(class_names, num_classes)
        palette = None if palette is None else check_palette(palette, num_classes)
        use_sync_bn = resolve_sync_batchnorm(sync_batchnorm)
        block_args = dict(bottleneck_ratio=bottleneck_ratio, sync_batchnorm=use_sync_bn)

        # Every layer is built under the model's dtype policy (keras' global policy when
        # `dtype` is not given); input normalisation and the logits stay float32.
        policy = keras.dtype_policies.get(kwargs.pop("dtype", None) or keras.config.dtype_policy())

        # === Layers and functional model ===
        with dtype_policy_scope(policy), folded_batchnorm_scope() if folded_batchnorm else contextlib.nullcontext():
            inputs, outputs = build_graph(
                num_classes, stage_backbones, decoder_channels, input_shape, guidance, spg_excitation, spg_identity,
                stage_supervision, cross_stage_aggregation, head_conv, include_preprocessing, use_sync_bn, block_args,
                pooling_crop=pooling_crop,
            )
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.dtype_policy = policy  # what get_config serialises (Functional drops `dtype`)

        # === Config ===
        self.num_classes = num_classes
        self.backbones = backbones if isinstance(backbones, str) else tuple(backbones)
        self.num_stages = num_stages
        self.decoder_channels = decoder_channels
        self.image_shape = tuple(input_shape)
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
            "input_shape": list(self.image_shape),
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

    presets = PRESET_DESCRIPTIONS
    """Preset name -> one-line description (architectures of the paper's tables)."""

    @classmethod
    def from_preset(cls, preset, num_classes=None, weights=None, **overrides):
        """Builds a preset architecture and loads weights into it.

        Args:
            preset: a name from `SPGNet.presets` (e.g. "spgnet_r50x2_256", Table 1), or, as
                in keras-hub, a saved SPGNet: the path of a `.keras` file or of a folder
                written by `save_to_preset`; its architecture and weights are loaded
                (`weights` stays None) and re-headed when `num_classes` differs.
            num_classes: number of classes. Required unless `weights` (or `preset`) is a
                saved SPGNet, whose class count, class names and palette are then kept;
                with another class count the new head starts without names unless
                `class_names=` / `palette=` are given.
            weights: None (random initialisation: no SPGNet checkpoints are published),
                "imagenet" (every encoder from keras-hub's ImageNet ResNet presets; needs
                `pip install keras-hub` and a network to download them), or the path of
                a saved SPGNet (`.keras`, or `.weights.h5` saved from the same preset).
                When the saved model has another class count than `num_classes`, the
                class-dependent layers (classifiers, SPG's logits and attention convs)
                keep their fresh initialisation and everything else is loaded
                (fine-tuning to new classes).
            **overrides: other `SPGNet` arguments replacing the preset's (e.g.
                `decoder_channels`, `input_shape`); an unknown keyword is a TypeError.

        Returns:
            An `SPGNet`.
        """
        from spgnet_keras.models.checkpoints import is_saved_preset, load_preset_weights, load_saved_preset

        check_argument_names(overrides)
        if is_saved_preset(preset):
            return load_saved_preset(cls, preset, num_classes, weights, overrides)
        arguments = {**preset_arguments(preset), **overrides}
        return load_preset_weights(cls, arguments, num_classes, weights)

    def save_to_preset(self, preset_dir, overwrite=False):
        """Saves this model as a preset folder (keras-hub's layout: `config.json`,
        `model.weights.h5`, `metadata.json`) that `SPGNet.from_preset(preset_dir)` loads.
        An existing preset there is replaced only with `overwrite=True`."""
        from spgnet_keras.models.checkpoints import save_preset_folder

        return save_preset_folder(self, preset_dir, overwrite=overwrite)

    # === Training defaults: compile(), compute_loss() ===

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        metrics="auto",
        *,
        loss_weights=None,
        ohem_threshold=None,
        ohem_min_kept=0,
        **kwargs,
    ):
        """`keras.Model.compile` with SPGNet's defaults for `optimizer`, `loss`, `metrics`.

        Explicit values replace the defaults and nothing is added to them.

        Args:
            optimizer: "auto" (`keras.optimizers.Adam(1e-3)`, which trains SPGNet from
                scratch or from ImageNet encoders without tuning; the paper's recipe,
                SGD with poly decay, is what `spgnet train` uses), or any Keras
                optimizer.
            loss: "auto": per-pixel softmax cross-entropy on logits with ignore label
                255 on every output (`spgnet_keras.losses.SegmentationCrossEntropy` on
                TensorFlow; `keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                ignore_class=255)` on other backends), the earlier stages weighted by
                `DEFAULT_STAGE_WEIGHT` (the paper's plain sum). A single Keras loss
                applies to every output alike; a dict keyed by output name applies per
                output.
            metrics: "auto": mean IoU (ignore label 255) on `"prediction"`, logged as
                `prediction_miou` (`val_prediction_miou`). Or Keras metrics as usual.
            loss_weights: per-output weights (dict keyed by output name). Default with
                `loss="auto"`: 1 for `"prediction"`, `DEFAULT_STAGE_WEIGHT` for stages.
            ohem_threshold: online hard example mining for `loss="auto"` (Table 8):
                keep pixels whose true-class probability is below this (e.g. 0.7).
                TensorFlow backend only.
            ohem_min_kept: with `ohem_threshold`, at least this many hardest pixels
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
            metrics = {PREDICTION: [default_metric(self.num_classes)]}
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


def build_graph(num_classes, stage_backbones, decoder_channels, input_shape, guidance, spg_excitation, spg_identity,
                stage_supervision, cross_stage_aggregation, head_conv, include_preprocessing, use_sync_bn, block_args,
                pooling_crop=None):
    """The functional graph of `SPGNet`: the image input and the dict of logits (`pooling_crop`: the
    training crop of test_pooling="crop", None for global pooling)."""
    inputs = keras.Input(shape=tuple(input_shape), name="image", dtype="float32")
    x = inputs
    if include_preprocessing:
        x = imagenet_normalization()(x)
    padded = PadToMultiple(OUTPUT_STRIDE, name="pad_to_stride")(x)
    x = apply_stem(padded, "stage1", use_sync_bn)
    outputs = {}
    previous_encoder, previous_decoder = None, None
    for index, backbone in enumerate(stage_backbones):
        stage = index + 1
        prefix = f"stage{stage}"
        encoder_features = []
        for stack in range(4):
            x = apply_stack(x, backbone, stack, prefix, use_sync_bn)
            if previous_encoder is not None and cross_stage_aggregation:
                x = CrossStageAggregation(sync_batchnorm=use_sync_bn, name=f"{prefix}_csfa{stack + 1}")(
                    [x, previous_encoder[stack], previous_decoder[stack]]
                )
            encoder_features.append(x)
        decoder_features, x_d = apply_decoder(encoder_features, decoder_channels, prefix, head_conv, block_args,
                                              pooling_crop)
        if stage == len(stage_backbones):
            logits = conv(num_classes, 1, use_bias=True, name=f"{prefix}_classifier", dtype="float32")(x_d)
            outputs[PREDICTION] = full_resolution(logits, padded, inputs, PREDICTION)
            break
        x, stage_logits = apply_stage_transition(
            x_d, num_classes, guidance, spg_excitation, spg_identity, stage_supervision, prefix, use_sync_bn,
            pooling_crop,
        )
        if stage_logits is not None:
            name = stage_output_name(stage)
            outputs[name] = full_resolution(stage_logits, padded, inputs, name)
        previous_encoder, previous_decoder = encoder_features, decoder_features
    return inputs, outputs


def full_resolution(logits, padded, inputs, name):
    """Stride-4 logits -> bilinear x4 to the padded input -> cropped to the input (float32)."""
    upsampled = ResizeLike(name=f"{name}_upsample", dtype="float32")([logits, padded])
    return CropLike(name=name, dtype="float32")([upsampled, inputs])


def imagenet_normalization():
    """The first layer: RGB 0-255 -> (x - mean) / std with ImageNet statistics.

    `keras.layers.Rescaling` with per-channel scale 1/std and offset -mean/std (plain
    constants, so every exporter folds them). A float32 layer whatever the dtype policy,
    so that 0-255 values are never rounded to bfloat16 before normalisation.
    """
    return keras.layers.Rescaling(
        scale=[1.0 / std for std in IMAGENET_STD],
        offset=[-mean / std for mean, std in zip(IMAGENET_MEAN, IMAGENET_STD)],
        name=PREPROCESSING,
        dtype="float32",
    )


def default_loss(ohem_threshold=None, ohem_min_kept=0):
    """`compile()`'s default loss: cross-entropy on logits, ignore label 255 (+OHEM)."""
    if keras.backend.backend() == "tensorflow":
        from spgnet_keras.losses import SegmentationCrossEntropy

        return SegmentationCrossEntropy(ohem_threshold=ohem_threshold, ohem_min_kept=ohem_min_kept)
    if ohem_threshold is not None or ohem_min_kept:
        raise InvalidInputError(
            f"OHEM (ohem_threshold/ohem_min_kept) needs the TensorFlow backend; this is {keras.backend.backend()!r}."
        )
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE_LABEL)


def default_metric(num_classes):
    """`compile()`'s default metric: mean IoU over the classes, ignore label 255."""
    if keras.backend.backend() == "tensorflow":
        from spgnet_keras.metrics import SegmentationMeanIoU

        return SegmentationMeanIoU(num_classes, name="miou")
    return keras.metrics.MeanIoU(num_classes, ignore_class=IGNORE_LABEL, sparse_y_pred=False, name="miou")


def stage_loss_weights(output_names, stage_weight=DEFAULT_STAGE_WEIGHT):
    """Loss weights: 1 for "prediction", `stage_weight` for every earlier stage."""
    return {name: 1.0 if name == PREDICTION else float(stage_weight) for name in output_names}


def targets_per_output(y, y_pred):
    """One mask for every output of a dict-output model; a dict of targets as it is."""
    if not isinstance(y_pred, dict) or isinstance(y, dict) or y is None:
        return y
    mask = drop_channel_axis(y)
    return {name: mask for name in y_pred}


def drop_channel_axis(mask):
    """(B, H, W, 1) -> (B, H, W); (B, H, W) unchanged (also when the rank is unknown)."""
    rank = mask.shape.rank if hasattr(mask.shape, "rank") else len(mask.shape)
    if rank is None:  # a TensorFlow trace with relaxed shapes (a second `fit` call)
        import tensorflow as tf

        shape = tf.shape(mask)
        return tf.reshape(mask, [shape[0], shape[1], shape[2]])
    if rank == 4 and mask.shape[-1] == 1:
        return keras.ops.squeeze(mask, axis=-1)
    return mask


def apply_decoder(encoder_features, channels, prefix, head_conv, block_args, pooling_crop=None):
    """GAP + 1x1 conv, then upsample modules from stride 32 to 4 (Sec 3.2-3.3).

    With `pooling_crop` (test_pooling="crop") the GAP is a `ContextPooling` that pools
    over the crop's stride-32 feature size at inference.

    Returns the upsample modules' outputs (strides 4..32, for cross-stage aggregation)
    and the decoder output x_d at stride 4.
    """
    sync = block_args["sync_batchnorm"]
    if pooling_crop is None:
        pooling = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}_gap")
    else:
        pooling = ContextPooling("crop", crop_pool_size(pooling_crop, OUTPUT_STRIDE), name=f"{prefix}_gap")
    y = pooling(encoder_features[-1])
    y = conv(channels, 1, name=f"{prefix}_gap_conv")(y)
    y = batch_norm(f"{prefix}_gap_bn", sync)(y)
    y = keras.layers.ReLU(name=f"{prefix}_gap_relu")(y)
    decoder_features = [None] * len(encoder_features)
    for scale in reversed(range(len(encoder_features))):
        y = UpsampleModule(channels, name=f"{prefix}_upsample{scale + 1}", **block_args)([encoder_features[scale], y])
        decoder_features[scale] = y
    x_d = y
    if head_conv:
        x_d = conv(channels, 3, name=f"{prefix}_head_conv")(x_d)
        x_d = batch_norm(f"{prefix}_head_bn", sync)(x_d)
        x_d = keras.layers.ReLU(name=f"{prefix}_head_relu")(x_d)
    return decoder_features, x_d


def apply_stage_transition(x_d, num_classes, guidance, excitation, identity, supervision, prefix, sync,
                           pooling_crop=None):
    """Next stage's input and this stage's logits (None when not supervised)."""
    name = f"{prefix}_{guidance}"
    if guidance == "spg":
        spg = SemanticPredictionGuidance(
            num_classes,
            output_channels=STEM_CHANNELS,
            excitation=excitation,
            identity=identity,
            supervision=supervision,
            sync_batchnorm=sync,
            name=name,
        )
        if supervision:
            return spg(x_d)
        return spg(x_d), None
    transition = {"se": SqueezeExciteTransition, "ge": GatherExciteTransition, "none": StageTransition}[guidance]
    pooling = {}
    if guidance == "se" and pooling_crop is not None:  # SE squeezes x_d, at stride 4
        pooling = dict(test_pooling="crop", pool_size=crop_pool_size(pooling_crop, 4))
    next_input = transition(output_channels=STEM_CHANNELS, sync_batchnorm=sync, name=name, **pooling)(x_d)
    logits = None
    if supervision:
        logits = conv(num_classes, 1, use_bias=True, name=f"{prefix}_classifier", dtype="float32")(x_d)
    return next_input, logits


def resolve_backbones(backbones, num_stages):
    """The per-stage encoder names, validated."""
    if isinstance(backbones, str):
        stages = 2 if num_stages is None else num_stages
        if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
            raise InvalidInputError(f"`num_stages` must be an integer >= 1, got {num_stages!r}.")
        backbones = [backbones] * stages
    else:
        backbones = list(backbones)
        if not backbones:
            raise InvalidInputError("`backbones` must name at least one encoder (the number of stages must be >= 1).")
        if num_stages is not None and num_stages != len(backbones):
            raise InvalidInputError(f"`num_stages`={num_stages!r} disagrees with the {len(backbones)} backbones given.")
    return tuple(check_backbone_name(name) for name in backbones)


def check_decoder_channels(decoder_channels):
    """ValueError unless `decoder_channels` is a positive integer <= MAX_DECODER_CHANNELS."""
    check_positive_int(decoder_channels, "decoder_channels")
    if decoder_channels > MAX_DECODER_CHANNELS:
        raise InvalidInputError(
            f"`decoder_channels` must be at most {MAX_DECODER_CHANNELS} "
            f"(spgnet_keras.constants.MAX_DECODER_CHANNELS; the paper's widest is 256), got {decoder_channels}."
        )
    return decoder_channels


def check_input_shape(input_shape):
    """Raises ValueError unless (H, W, C) with H, W None or positive integers."""
    if len(tuple(input_shape)) != 3:
        raise InvalidInputError(f"`input_shape` must be (height, width, channels), got {input_shape!r}.")
    height, width, channels = input_shape
    for size, label in ((height, "height"), (width, "width")):
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
            raise InvalidInputError(f"Input {label} must be a positive integer (or None), got {size!r}.")
    check_positive_int(channels, "input channels")


@contextlib.contextmanager
def dtype_policy_scope(policy):
    """Keras' global dtype policy set to `policy` while layers are built, then restored."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def check_model_kwargs(kwargs):
    """TypeError naming a keyword that is neither an SPGNet nor a keras.Model argument."""
    unknown = sorted(set(kwargs) - set(_MODEL_KWARGS))
    if unknown:
        raise TypeError(
            f"SPGNet() got an unexpected keyword argument {unknown[0]!r}; SPGNet takes "
            f"{', '.join(spgnet_argument_names())} and the keras.Model arguments {', '.join(_MODEL_KWARGS)}."
        )


def spgnet_argument_names():
    """Names of SPGNet's own constructor arguments."""
    import inspect

    parameters = inspect.signature(SPGNet.__init__).parameters
    return [name for name, p in parameters.items() if name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]


def check_argument_names(arguments):
    """TypeError for a key of `arguments` that SPGNet does not take."""
    check_model_kwargs({k: v for k, v in arguments.items() if k not in spgnet_argument_names()})


def check_choice(value, choices, name):
    if value not in choices:
        raise InvalidInputError(f"`{name}` must be one of {choices}, got {value!r}.")


def resolve_sync_batchnorm(sync_batchnorm):
    """None -> True when a `tf.distribute` strategy with several replicas is in scope."""
    if sync_batchnorm is None:
        if keras.backend.backend() != "tensorflow":
            return False
        import tensorflow as tf

        return tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1
    return bool(sync_batchnorm)


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
    """ValueError unless `model` takes RGB 0-255 (the package's one input convention)."""
    if getattr(model, "include_preprocessing", True) is False:
        raise InvalidInputError(
            "This SPGNet was built with include_preprocessing=False and takes normalised input, while "
            "spgnet_keras feeds RGB in [0, 255]; convert it with spgnet_keras.models.with_preprocessing(model)."
        )
