"""Architectures of the paper's tables by name (Tables 1, 3, 5, 6, 7, 9)."""


from spgnet_keras.errors import InvalidInputError

# name -> SPGNet arguments (num_classes is given by the user).
PRESETS = {
    "spgnet_r18x1_128": dict(backbones=("resnet18",), decoder_channels=128),
    "spgnet_r50x1_128": dict(backbones=("resnet50",), decoder_channels=128),
    "spgnet_r101x1_128": dict(backbones=("resnet101",), decoder_channels=128),
    "spgnet_r152x1_128": dict(backbones=("resnet152",), decoder_channels=128),
    "spgnet_r18x2_128": dict(backbones=("resnet18", "resnet18"), decoder_channels=128),
    "spgnet_r18x3_128": dict(backbones=("resnet18",) * 3, decoder_channels=128),
    "spgnet_r50x2_128": dict(backbones=("resnet50", "resnet50"), decoder_channels=128),
    "spgnet_r101x2_128": dict(backbones=("resnet101", "resnet101"), decoder_channels=128),
    "spgnet_r18_r50_128": dict(backbones=("resnet18", "resnet50"), decoder_channels=128),
    "spgnet_r50_r18_128": dict(backbones=("resnet50", "resnet18"), decoder_channels=128),
    "spgnet_r50x2_256": dict(backbones=("resnet50", "resnet50"), decoder_channels=256),
    "spgnet_r101x2_256": dict(backbones=("resnet101", "resnet101"), decoder_channels=256),
}

# name -> one-line description (`SPGNet.presets`).
PRESET_DESCRIPTIONS = {
    "spgnet_r18x1_128": "1 stage, ResNet-18 encoder, decoder width 128 (Table 5/9 one-stage baseline).",
    "spgnet_r50x1_128": "1 stage, ResNet-50 encoder, decoder width 128 (Table 5).",
    "spgnet_r101x1_128": "1 stage, ResNet-101 encoder, decoder width 128 (Table 5).",
    "spgnet_r152x1_128": "1 stage, ResNet-152 encoder, decoder width 128 (Table 5).",
    "spgnet_r18x2_128": "2 stages, ResNet-18 + ResNet-18, width 128 (Tables 3, 4, 7: the ablation model).",
    "spgnet_r18x3_128": "3 stages of ResNet-18, width 128 (Table 7).",
    "spgnet_r50x2_128": "2 stages, ResNet-50 + ResNet-50, width 128 (Table 5).",
    "spgnet_r101x2_128": "2 stages, ResNet-101 + ResNet-101, width 128 (Table 5).",
    "spgnet_r18_r50_128": "2 stages, ResNet-18 then ResNet-50, width 128 (Table 6).",
    "spgnet_r50_r18_128": "2 stages, ResNet-50 then ResNet-18, width 128 (Table 6).",
    "spgnet_r50x2_256": "2 stages, ResNet-50 + ResNet-50, width 256: the paper's Cityscapes model (Tables 1, 9).",
    "spgnet_r101x2_256": "2 stages, ResNet-101 + ResNet-101, width 256 (Table 9).",
}

# Table 3 / Table 4 variants of the two-stage ResNet-18 model (decoder width 128). Every
# two-stage variant has a supervised stage-1 output ("stage1") except
# spg_sigmoid_no_supervision (Table 3, Sup. x); in no_spg, se and ge it is a 1x1 classifier on
# the stage-1 decoder output that feeds nothing (Table 4's "Supervise x": the attention is not
# computed from supervised predictions). one_stage has a single output.
ABLATIONS = {
    "one_stage": dict(backbones=("resnet18",)),
    "no_spg": dict(guidance="none"),
    "spg_sum": dict(spg_excitation="sum"),
    "spg_softmax": dict(spg_excitation="softmax"),
    "spg_sigmoid": dict(),
    "spg_sigmoid_no_identity": dict(spg_identity=False),
    "spg_sigmoid_no_supervision": dict(stage_supervision=False),
    "se": dict(guidance="se"),
    "ge": dict(guidance="ge"),
}


def preset_arguments(name):
    """SPGNet arguments of preset `name`; ValueError listing the presets otherwise."""
    if name not in PRESETS:
        raise InvalidInputError(f"Unknown preset {name!r}; expected one of {sorted(PRESETS)} (SPGNet.from_preset also "
                         "takes the path of a saved .keras file or preset folder).")
    return dict(PRESETS[name])


def ablation_arguments(variant, base="spgnet_r18x2_128"):
    """Arguments of a Table 3/4 variant of the two-stage model `base`."""
    if variant not in ABLATIONS:
        raise InvalidInputError(f"Unknown ablation variant {variant!r}; expected one of {sorted(ABLATIONS)}.")
    return {**preset_arguments(base), **ABLATIONS[variant]}
