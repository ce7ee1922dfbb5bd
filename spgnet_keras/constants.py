"""Constants shared by data loading, evaluation and export (defined once)."""

# ImageNet statistics in the 0-255 range, RGB order (the encoders are ImageNet ResNets).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

# Name of SPGNet's output holding the last stage's logits (earlier stages: "stage1", ...).
PREDICTION = "prediction"

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

# --- Upper bounds on the sizes a user can give -----------------------------------------
# Each is checked before anything is allocated, so that a typo is a one-line error instead
# of an out-of-memory traceback (README "Limits", docs/reliability.md). Raise one here if a
# real use needs more.

# Longest image side, for prediction and evaluation (also after test-time scaling) and
# training crops. With MAX_IMAGE_PIXELS it bounds one full-image pass: padding a side to a
# multiple of 32 can then at most add 31 x 16384 pixels (a 1 x 16M-pixel strip would become
# 32 x 16M = 512M pixels). 16384 = 4 x 4096 (a wide panorama).
MAX_IMAGE_SIDE = 16384

# Decoder width D of `SPGNet(decoder_channels=...)`: 4x the paper's widest (Table 9: 256).
# A 3x3 decoder conv holds 9 x D^2 weights (D=1024: 9.4M) and one stride-4 feature map of a
# 1024x2048 image 256 x 512 x D floats (D=1024: 512 MiB), several per stage.
MAX_DECODER_CHANNELS = 1024

# Largest resize factor of test-time `scales` and of training augmentation `data.scales`:
# 2x the paper's largest (2.0, Sec 4.2 / 4.3). A scaled image must also stay within
# MAX_IMAGE_SIDE and MAX_IMAGE_PIXELS (the logits of a pass are H x W x C floats).
MAX_SCALE = 4.0

# Sliding windows: the longest window side (a window is a crop the model sees whole; 4096
# is the side of the largest square image, beyond which no window is needed) and the most
# windows per scaled image (Cityscapes 2048x1024 at scale 2.0 with 512 windows at the
# default 2/3 step needs 72; a tiny step on a large image would list millions).
MAX_WINDOW_SIDE = 4096
MAX_WINDOWS_PER_IMAGE = 4096

# Images/windows per model call at inference (`--batch-size`): memory grows linearly.
MAX_INFERENCE_BATCH = 64
