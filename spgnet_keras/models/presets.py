"""Architectures of the paper's tables by name (Tables 1, 3, 5, 6, 7, 9).

`PRESETS` is the one preset table, in the shape of keras-hub's `backbone_presets`: each
entry holds its `metadata` (a one-line `description`, the number of stages, the tables
it appears in) and its `config` (the `SPGNet` arguments; `num_classes` is given by the
user).
"""

from spgnet_keras.errors import InvalidInputError


def _preset(description, tables, backbones, decoder_channels):
    return {
        "metadata": {"description": description, "num_stages": len(backbones), "tables": tables},
        "config": {"backbones": backbones, "decoder_channels": decoder_channels},
    }


R18, R50, R101, R152 = "resnet18", "resnet50", "resnet101", "resnet152"

# name -> {"metadata": {...}, "config": SPGNet arguments}.
PRESETS = {
    "spgnet_r18x1_128": _preset(
        "1 stage, ResNet-18 encoder, decoder width 128 (Table 5/9 one-stage baseline).", (5, 9), (R18,), 128),
    "spgnet_r50x1_128": _preset("1 stage, ResNet-50 encoder, decoder width 128 (Table 5).", (5,), (R50,), 128),
    "spgnet_r101x1_128": _preset("1 stage, ResNet-101 encoder, decoder width 128 (Table 5).", (5,), (R101,), 128),
    "spgnet_r152x1_128": _preset("1 stage, ResNet-152 encoder, decoder width 128 (Table 5).", (5,), (R152,), 128),
    "spgnet_r18x2_128": _preset(
        "2 stages, ResNet-18 + ResNet-18, width 128 (Tables 3, 4, 7: the ablation model).", (3, 4, 7), (R18, R18),
        128),
    "spgnet_r18x3_128": _preset("3 stages of ResNet-18, width 128 (Table 7).", (7,), (R18,) * 3, 128),
    "spgnet_r50x2_128": _preset("2 stages, ResNet-50 + ResNet-50, width 128 (Table 5).", (5,), (R50, R50), 128),
    "spgnet_r101x2_128": _preset("2 stages, ResNet-101 + ResNet-101, width 128 (Table 5).", (5,), (R101, R101), 128),
    "spgnet_r18_r50_128": _preset("2 stages, ResNet-18 then ResNet-50, width 128 (Table 6).", (6,), (R18, R50), 128),
    "spgnet_r50_r18_128": _preset("2 stages, ResNet-50 then ResNet-18, width 128 (Table 6).", (6,), (R50, R18), 128),
    "spgnet_r50x2_256": _preset(
        "2 stages, ResNet-50 + ResNet-50, width 256: the paper's Cityscapes model (Tables 1, 9).", (1, 9),
        (R50, R50), 256),
    "spgnet_r101x2_256": _preset(
        "2 stages, ResNet-101 + ResNet-101, width 256 (Table 9).", (9,), (R101, R101), 256),
}

# Table 3 / Table 4 variants of the two-stage ResNet-18 model (decoder width 128). Every
# two-stage variant has a supervised stage-1 output ("stage1") except
# spg_sigmoid_no_supervision (Table 3, Sup. x); in no_spg, se and ge it is a 1x1 classifier on
# the stage-1 decoder output that feeds nothing (Table 4's "Supervise x": the attention is not
# computed from supervised predictions). one_stage has a single output.
ABLATIONS = {
    "one_stage": dict(backbones=(R18,)),
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
    """The `SPGNet` arguments of preset `name` (a copy of its `config`).

    Args:
        name: str. A key of `PRESETS`.

    Raises:
        InvalidInputError: `name` is not a preset (the message lists them).
    """
    if name not in PRESETS:
        raise InvalidInputError(f"Unknown preset {name!r}; expected one of {sorted(PRESETS)} (SPGNet.from_preset also "
                                "takes the path of a saved .keras file or preset folder).")
    return dict(PRESETS[name]["config"])


def preset_description(name):
    """The one-line description of preset `name` (its `metadata["description"]`)."""
    if name not in PRESETS:
        preset_arguments(name)  # raises, listing the presets
    return PRESETS[name]["metadata"]["description"]


def ablation_arguments(variant, base="spgnet_r18x2_128"):
    """The `SPGNet` arguments of a Table 3/4 variant of the two-stage model `base`.

    Args:
        variant: str. A key of `ABLATIONS`.
        base: str. The preset the variant changes.
    """
    if variant not in ABLATIONS:
        raise InvalidInputError(f"Unknown ablation variant {variant!r}; expected one of {sorted(ABLATIONS)}.")
    return {**preset_arguments(base), **ABLATIONS[variant]}
