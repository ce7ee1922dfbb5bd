"""The Table 3 / Table 4 ablation's variants, paper numbers and budgets, shared by
`benchmarks/ablation.py` (TensorFlow) and `benchmarks/ablation_jax.py` (JAX, without
TensorFlow): importing this module imports neither Keras nor TensorFlow, so a script can
choose Keras' backend after reading it.
"""

# variant -> (table, label, paper Cityscapes val mIoU with R18 encoders)
PAPER = {
    "one_stage": ("3", "1 stage", 74.48),
    "no_spg": ("3", "2 stages, no SPG (baseline)", 76.31),
    "spg_sum": ("3", "SPG (sum)", 76.96),
    "spg_softmax": ("3", "SPG (softmax)", 77.17),
    "spg_sigmoid": ("3", "SPG (sigmoid)", 77.67),
    "spg_sigmoid_no_identity": ("3", "SPG (sigmoid), no identity", 77.24),
    "spg_sigmoid_no_supervision": ("3", "SPG (sigmoid), no supervision", 77.12),
    "se": ("4", "SE", 77.09),
    "ge": ("4", "GE", 77.22),
    # Not a paper row: the comparison users ask for (Sec 4.4 compares SPGNet with DeepLabV3+ on
    # Cityscapes test only, with other encoders), same budget, recipe and seeds.
    "deeplabv3plus": ("-", "keras-cv DeepLabV3+ R18", None),
}
VARIANTS = tuple(PAPER)
STAGE1 = "stage1"  # SPGNet's first-stage output (two-stage models)
SPGNET_VARIANTS = tuple(v for v in VARIANTS if v != "deeplabv3plus")

BUDGETS = {
    "smoke": dict(crop=(96, 128), batch=4, decoder=32, steps=20, val_images=12, learning_rate=0.02,
                  scales=[0.75, 1.0, 1.25]),
    "small": dict(crop=(160, 224), batch=8, decoder=64, steps=100, val_images=None, learning_rate=0.02,
                  scales=[0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]),
    "medium": dict(crop=(160, 224), batch=8, decoder=64, steps=400, val_images=None, learning_rate=0.02,
                   scales=[0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]),
    "full": dict(crop=(160, 224), batch=8, decoder=128, steps=920, val_images=None, learning_rate=0.02,
                 scales=[0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]),
}
