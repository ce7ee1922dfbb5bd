"""Constants shared by data loading, evaluation and export (defined once)."""

# ImageNet statistics in the 0-255 range, RGB order (the encoders are ImageNet ResNets).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

# Label value that is never counted by losses or metrics (CamVid void, Cityscapes ignore).
IGNORE_LABEL = 255

# Every spatial size must be divisible by the encoder's output stride.
OUTPUT_STRIDE = 32

# Largest image (width x height) that loading, prediction and the served model accept:
# a header declaring more is rejected before decoding instead of exhausting memory.
MAX_IMAGE_PIXELS = 4096 * 4096

# Loss weight of each earlier stage's output (deep supervision) in `SPGNet.compile()`'s
# default loss and in the training recipe. The paper (Sec 3.4) minimises "the loss of
# last-stage semantic prediction and per-class logits x_l in all previous stages" with no
# weights given: a plain sum. (0.4, PSPNet's auxiliary weight, is a common alternative.)
DEFAULT_STAGE_WEIGHT = 1.0
