"""The SPGNet model (Cheng et al., "SPGNet: Semantic Prediction Guidance for Scene
Parsing", ICCV 2019)."""

import keras

from spgnet_keras.constants import OUTPUT_STRIDE
from spgnet_keras.layers.common import batch_norm, check_positive_int, conv
from spgnet_keras.layers.cross_stage import CrossStageAggregation
from spgnet_keras.layers.excitation import GatherExciteTransition, SqueezeExciteTransition, StageTransition
from spgnet_keras.layers.resize import ResizeLike
from spgnet_keras.layers.spg import EXCITATIONS, SemanticPredictionGuidance
from spgnet_keras.layers.upsample import UpsampleModule
from spgnet_keras.models.resnet import STEM_CHANNELS, apply_stack, apply_stem, check_backbone_name

GUIDANCES = ("spg", "se", "ge", "none")
PREDICTION = "prediction"


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

    Inputs are RGB images normalised with the ImageNet mean/std
    (`spgnet_keras.constants`).

    Args:
        num_classes: number of semantic classes C.
        backbones: encoder name ("resnet18", "resnet34", "resnet50", "resnet101",
            "resnet152") used by every stage, or a sequence with one name per stage
            (Table 6: ("resnet18", "resnet50")).
        num_stages: number of stages when `backbones` is a single name.
        decoder_channels: decoder width D (Table 9).
        input_shape: (height, width, channels); height and width may be None, and when
            given must be divisible by 32.
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
        **kwargs: `name`, `dtype` and other `keras.Model` arguments.
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
        **kwargs,
    ):
        stage_backbones = resolve_backbones(backbones, num_stages)
        check_positive_int(num_classes, "num_classes")
        check_positive_int(decoder_channels, "decoder_channels")
        check_input_shape(input_shape)
        check_choice(guidance, GUIDANCES, "guidance")
        check_choice(spg_excitation, EXCITATIONS, "spg_excitation")
        use_sync_bn = resolve_sync_batchnorm(sync_batchnorm)
        block_args = dict(bottleneck_ratio=bottleneck_ratio, sync_batchnorm=use_sync_bn)

        # === Layers and functional model ===
        inputs = keras.Input(shape=tuple(input_shape), name="image")
        x = apply_stem(inputs, "stage1", use_sync_bn)
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
            decoder_features, x_d = apply_decoder(encoder_features, decoder_channels, prefix, head_conv, block_args)
            if stage == len(stage_backbones):
                logits = conv(num_classes, 1, use_bias=True, name=f"{prefix}_classifier", dtype="float32")(x_d)
                outputs[PREDICTION] = ResizeLike(name=PREDICTION, dtype="float32")([logits, inputs])
                break
            x, stage_logits = apply_stage_transition(
                x_d, num_classes, guidance, spg_excitation, spg_identity, stage_supervision, prefix, use_sync_bn
            )
            if stage_logits is not None:
                name = stage_output_name(stage)
                outputs[name] = ResizeLike(name=name, dtype="float32")([stage_logits, inputs])
            previous_encoder, previous_decoder = encoder_features, decoder_features

        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

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
        self.stage_backbones = stage_backbones

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
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
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def from_preset(cls, preset, num_classes, **overrides):
        """Builds an architecture of the paper's tables by name (see `presets.PRESETS`)."""
        from spgnet_keras.models.presets import preset_arguments

        return cls(num_classes=num_classes, **{**preset_arguments(preset), **overrides})

    def guidance_layer(self, stage=1):
        """The layer between stage `stage` and the next (an SPG layer for guidance="spg")."""
        if not 1 <= stage < len(self.stage_backbones):
            raise ValueError(f"`stage` must be in [1, {len(self.stage_backbones) - 1}], got {stage!r}.")
        return self.get_layer(f"stage{stage}_{self.guidance}")


def apply_decoder(encoder_features, channels, prefix, head_conv, block_args):
    """GAP + 1x1 conv, then upsample modules from stride 32 to 4 (Sec 3.2-3.3).

    Returns the upsample modules' outputs (strides 4..32, for cross-stage aggregation)
    and the decoder output x_d at stride 4.
    """
    sync = block_args["sync_batchnorm"]
    y = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}_gap")(encoder_features[-1])
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


def apply_stage_transition(x_d, num_classes, guidance, excitation, identity, supervision, prefix, sync):
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
    next_input = transition(output_channels=STEM_CHANNELS, sync_batchnorm=sync, name=name)(x_d)
    logits = None
    if supervision:
        logits = conv(num_classes, 1, use_bias=True, name=f"{prefix}_classifier", dtype="float32")(x_d)
    return next_input, logits


def resolve_backbones(backbones, num_stages):
    """The per-stage encoder names, validated."""
    if isinstance(backbones, str):
        stages = 2 if num_stages is None else num_stages
        if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
            raise ValueError(f"`num_stages` must be an integer >= 1, got {num_stages!r}.")
        backbones = [backbones] * stages
    else:
        backbones = list(backbones)
        if not backbones:
            raise ValueError("`backbones` must name at least one encoder (the number of stages must be >= 1).")
        if num_stages is not None and num_stages != len(backbones):
            raise ValueError(f"`num_stages`={num_stages!r} disagrees with the {len(backbones)} backbones given.")
    return tuple(check_backbone_name(name) for name in backbones)


def check_input_shape(input_shape):
    """Raises ValueError unless (H, W, C) with H, W None or divisible by 32."""
    if len(tuple(input_shape)) != 3:
        raise ValueError(f"`input_shape` must be (height, width, channels), got {input_shape!r}.")
    height, width, channels = input_shape
    for size, label in ((height, "height"), (width, "width")):
        if size is not None and (not isinstance(size, int) or size <= 0 or size % OUTPUT_STRIDE):
            raise ValueError(
                f"Input {label} must be a positive multiple of {OUTPUT_STRIDE} (or None), got {size!r}; "
                "pad or resize the images."
            )
    check_positive_int(channels, "input channels")


def check_choice(value, choices, name):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}, got {value!r}.")


def resolve_sync_batchnorm(sync_batchnorm):
    """None -> True when a `tf.distribute` strategy with several replicas is in scope."""
    if sync_batchnorm is None:
        if keras.backend.backend() != "tensorflow":
            return False
        import tensorflow as tf

        return tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1
    return bool(sync_batchnorm)
