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
