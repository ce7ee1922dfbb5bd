"""The functional graph of `SPGNet` and the checks of its arguments.

`build_graph(GraphConfig(...))` returns the image input and the dict of logits. Every
layer is given its dtype policy (`GraphConfig.settings.dtype`), as keras-hub's models do:
Keras' global dtype policy is neither read nor set while the graph is built (the global
policy is used only when the model itself is given no `dtype`). Input normalisation, the
classifiers and the logits are float32 whatever the policy.
"""

import dataclasses

import keras

from spgnet_keras.constants import IMAGENET_MEAN, IMAGENET_STD, MAX_DECODER_CHANNELS, OUTPUT_STRIDE, PREDICTION
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.layers.common import LayerSettings, check_positive_int
from spgnet_keras.layers.cross_stage import CrossStageAggregation
from spgnet_keras.layers.excitation import GatherExciteTransition, SqueezeExciteTransition, StageTransition
from spgnet_keras.layers.pooling import ContextPooling, crop_pool_size
from spgnet_keras.layers.resize import CropLike, PadToMultiple, ResizeLike
from spgnet_keras.layers.spg import SemanticPredictionGuidance
from spgnet_keras.layers.upsample import UpsampleModule
from spgnet_keras.models.outputs import stage_output_name
from spgnet_keras.models.resnet import STEM_CHANNELS, apply_stack, apply_stem, check_backbone_name

GUIDANCES = ("spg", "se", "ge", "none")
PREPROCESSING = "preprocessing"


@dataclasses.dataclass(frozen=True)
class GraphConfig:
    """What `build_graph` builds: the validated architecture of one SPGNet.

    Args:
        num_classes: int. Number of classes C.
        stage_backbones: tuple of str. One encoder name per stage.
        decoder_channels: int. Decoder width D.
        image_shape: tuple. (height, width, channels) of the input.
        guidance: str. "spg", "se", "ge" or "none".
        spg_excitation: str. "sigmoid", "softmax" or "sum".
        spg_identity: bool. SPG's identity path.
        stage_supervision: bool. Earlier stages' logits are outputs.
        cross_stage_aggregation: bool. Previous stage's features added to the encoder.
        bottleneck_ratio: float. Inner width of the decoder's residual blocks.
        head_conv: bool. A 3x3 conv + BN + ReLU before the classifier.
        include_preprocessing: bool. ImageNet normalisation of 0-255 input inside the model.
        pooling_crop: tuple of 2 ints or None. Training crop of test_pooling="crop".
        settings: `LayerSettings`. Dtype policy, BatchNorm kind and folding of every layer.

    Example:

    ```python
    inputs, outputs = build_graph(GraphConfig(num_classes=3, stage_backbones=("resnet18",)))
    ```
    """

    num_classes: int
    stage_backbones: tuple
    decoder_channels: int = 256
    image_shape: tuple = (None, None, 3)
    guidance: str = "spg"
    spg_excitation: str = "sigmoid"
    spg_identity: bool = True
    stage_supervision: bool = True
    cross_stage_aggregation: bool = True
    bottleneck_ratio: float = 0.25
    head_conv: bool = True
    include_preprocessing: bool = True
    pooling_crop: tuple = None
    settings: LayerSettings = LayerSettings()

    def block_arguments(self):
        """Keyword arguments of the decoder's upsample modules."""
        return dict(bottleneck_ratio=self.bottleneck_ratio, **self.settings.block_arguments())


def build_graph(config):
    """The functional graph of `SPGNet`.

    Args:
        config: `GraphConfig`.

    Returns:
        (the image `keras.Input`, dict of float32 logits keyed `"prediction"`, `"stage1"`, ...).
    """
    settings = config.settings
    inputs = keras.Input(shape=tuple(config.image_shape), name="image", dtype="float32")
    x = inputs
    if config.include_preprocessing:
        x = imagenet_normalization()(x)
    padded = PadToMultiple(OUTPUT_STRIDE, name="pad_to_stride", dtype=settings.dtype)(x)
    x = apply_stem(padded, "stage1", settings)
    outputs = {}
    previous_encoder, previous_decoder = None, None
    for index, backbone in enumerate(config.stage_backbones):
        stage = index + 1
        prefix = f"stage{stage}"
        encoder_features = []
        for stack in range(4):
            x = apply_stack(x, backbone, stack, prefix, settings)
            if previous_encoder is not None and config.cross_stage_aggregation:
                x = CrossStageAggregation(name=f"{prefix}_csfa{stack + 1}", **settings.block_arguments())(
                    [x, previous_encoder[stack], previous_decoder[stack]]
                )
            encoder_features.append(x)
        decoder_features, x_d = apply_decoder(encoder_features, prefix, config)
        if stage == len(config.stage_backbones):
            logits = classifier(config.num_classes, f"{prefix}_classifier")(x_d)
            outputs[PREDICTION] = full_resolution(logits, padded, inputs, PREDICTION)
            break
        x, stage_logits = apply_stage_transition(x_d, prefix, config)
        if stage_logits is not None:
            name = stage_output_name(stage)
            outputs[name] = full_resolution(stage_logits, padded, inputs, name)
        previous_encoder, previous_decoder = encoder_features, decoder_features
    return inputs, outputs


def classifier(num_classes, name):
    """The 1x1 classifier conv (with bias), float32 whatever the dtype policy."""
    return keras.layers.Conv2D(num_classes, 1, padding="same", use_bias=True, kernel_initializer="he_normal",
                               name=name, dtype="float32")


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


def apply_decoder(encoder_features, prefix, config):
    """GAP + 1x1 conv, then upsample modules from stride 32 to 4 (Sec 3.2-3.3).

    With `config.pooling_crop` (test_pooling="crop") the GAP is a `ContextPooling` that
    pools over the crop's stride-32 feature size at inference.

    Returns:
        The upsample modules' outputs (strides 4..32, for cross-stage aggregation) and
        the decoder output x_d at stride 4.
    """
    settings, channels = config.settings, config.decoder_channels
    if config.pooling_crop is None:
        pooling = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}_gap", dtype=settings.dtype)
    else:
        pooling = ContextPooling("crop", crop_pool_size(config.pooling_crop, OUTPUT_STRIDE), name=f"{prefix}_gap",
                                 dtype=settings.dtype)
    y = pooling(encoder_features[-1])
    y = settings.conv(channels, 1, name=f"{prefix}_gap_conv")(y)
    y = settings.batch_norm(f"{prefix}_gap_bn")(y)
    y = keras.layers.ReLU(name=f"{prefix}_gap_relu", dtype=settings.dtype)(y)
    decoder_features = [None] * len(encoder_features)
    for scale in reversed(range(len(encoder_features))):
        module = UpsampleModule(channels, name=f"{prefix}_upsample{scale + 1}", **config.block_arguments())
        y = module([encoder_features[scale], y])
        decoder_features[scale] = y
    x_d = y
    if config.head_conv:
        x_d = settings.conv(channels, 3, name=f"{prefix}_head_conv")(x_d)
        x_d = settings.batch_norm(f"{prefix}_head_bn")(x_d)
        x_d = keras.layers.ReLU(name=f"{prefix}_head_relu", dtype=settings.dtype)(x_d)
    return decoder_features, x_d


def apply_stage_transition(x_d, prefix, config):
    """Next stage's input and this stage's logits (None when not supervised)."""
    name = f"{prefix}_{config.guidance}"
    block_arguments = config.settings.block_arguments()
    if config.guidance == "spg":
        spg = SemanticPredictionGuidance(
            config.num_classes,
            output_channels=STEM_CHANNELS,
            excitation=config.spg_excitation,
            identity=config.spg_identity,
            supervision=config.stage_supervision,
            name=name,
            **block_arguments,
        )
        if config.stage_supervision:
            return spg(x_d)
        return spg(x_d), None
    transition = {"se": SqueezeExciteTransition, "ge": GatherExciteTransition, "none": StageTransition}[config.guidance]
    pooling = {}
    if config.guidance == "se" and config.pooling_crop is not None:  # SE squeezes x_d, at stride 4
        pooling = dict(test_pooling="crop", pool_size=crop_pool_size(config.pooling_crop, 4))
    next_input = transition(output_channels=STEM_CHANNELS, name=name, **pooling, **block_arguments)(x_d)
    logits = None
    if config.stage_supervision:
        logits = classifier(config.num_classes, f"{prefix}_classifier")(x_d)
    return next_input, logits


# === Checks of the SPGNet arguments ===


def resolve_backbones(backbones, num_stages):
    """The per-stage encoder names, validated.

    Args:
        backbones: str or sequence of str. One encoder for every stage, or one per stage.
        num_stages: int or None. Number of stages when `backbones` is a single name
            (default 2).
    """
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
    """Returns `decoder_channels`; `InvalidInputError` unless a positive integer <= MAX_DECODER_CHANNELS."""
    check_positive_int(decoder_channels, "decoder_channels")
    if decoder_channels > MAX_DECODER_CHANNELS:
        raise InvalidInputError(
            f"`decoder_channels` must be at most {MAX_DECODER_CHANNELS} "
            f"(spgnet_keras.constants.MAX_DECODER_CHANNELS; the paper's widest is 256), got {decoder_channels}."
        )
    return decoder_channels


def check_image_shape(image_shape):
    """Returns `image_shape` as a tuple; `InvalidInputError` unless (H, W, C) with H, W None or positive ints."""
    if len(tuple(image_shape)) != 3:
        raise InvalidInputError(f"`image_shape` must be (height, width, channels), got {image_shape!r}.")
    height, width, channels = image_shape
    for size, label in ((height, "height"), (width, "width")):
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
            raise InvalidInputError(f"Input {label} must be a positive integer (or None), got {size!r}.")
    check_positive_int(channels, "input channels")
    return tuple(image_shape)


def check_choice(value, choices, name):
    """`InvalidInputError` unless `value` is one of `choices`."""
    if value not in choices:
        raise InvalidInputError(f"`{name}` must be one of {choices}, got {value!r}.")


def resolve_sync_batchnorm(sync_batchnorm):
    """`sync_batchnorm`, with None -> True when a `tf.distribute` strategy with several replicas is in scope."""
    if sync_batchnorm is None:
        if keras.backend.backend() != "tensorflow":
            return False
        import tensorflow as tf  # tf.distribute exists on the TensorFlow backend only

        return tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1
    return bool(sync_batchnorm)


