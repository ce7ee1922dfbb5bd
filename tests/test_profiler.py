import subprocess
import sys

import numpy as np

from spgnet_keras import SPGNet
from spgnet_keras.models import ablation_arguments, preset_arguments
from spgnet_keras.models.presets import ABLATIONS, PRESETS
from spgnet_keras.profiler import PAPER_ROWS, count_macs, count_params


def test_count_macs_of_a_single_conv():
    import keras

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(8, 3, strides=2, padding="same")(inputs))
    assert count_macs(model, 32, 48) == 16 * 24 * 8 * 3 * 3 * 3


def test_spg_adds_attention_and_transform_convs_over_the_baseline():
    """Table 3: SPG costs C*D (attention conv) + D*D (transform conv) MACs per stride-4 pixel."""
    classes, channels, size = 19, 16, (64, 128)
    base = {**ablation_arguments("no_spg"), "decoder_channels": channels}
    spg = {**ablation_arguments("spg_sigmoid"), "decoder_channels": channels}
    baseline, guided = SPGNet(classes, **base), SPGNet(classes, **spg)
    pixels = (size[0] // 4) * (size[1] // 4)
    assert count_macs(guided, *size) - count_macs(baseline, *size) == (classes * channels + channels**2) * pixels
    assert count_params(guided) - count_params(baseline) == classes * channels + channels + channels**2 + channels


def test_count_macs_with_and_without_the_stride_padding():
    """SPGNet pads its input to multiples of 32: counted by default (65x97 costs what 96x128
    does), left out with pad_to_stride=False (the network on the 65x97 grid, as the
    paper's 1025x2049 count), and the same either way on multiples of 32."""
    model = SPGNet(5, backbones=("resnet18",), decoder_channels=8)
    padded = count_macs(model, 65, 97)
    assert padded == count_macs(model, 96, 128) == count_macs(model, 96, 128, pad_to_stride=False)
    unpadded = count_macs(model, 65, 97, pad_to_stride=False)
    assert 0 < unpadded < padded
    # The model is left as it was: it pads again.
    pad = model.get_layer("pad_to_stride")
    assert "call" not in vars(pad)
    assert count_macs(model, 65, 97) == padded
    assert tuple(model(np.zeros((1, 65, 97, 3), "float32"))["prediction"].shape) == (1, 65, 97, 5)


def test_every_preset_and_table3_variant_has_a_paper_row():
    """The profile table and the presets describe the same networks: each preset and each
    Table 3 variant is one paper row (SE/GE, Table 4, have no cost row in the paper)."""
    rows = [row.arguments for row in PAPER_ROWS]
    for name in PRESETS:
        assert preset_arguments(name) in rows, name
    for variant in sorted(set(ABLATIONS) - {"se", "ge"}):
        assert {**preset_arguments("spgnet_r18x2_128"), **ablation_arguments(variant)} in rows, variant
    assert {t for row in PAPER_ROWS for t in row.tables.split(",")} == {"1", "3", "5", "6", "7", "9"}


def test_small_paper_rows_parameters_within_one_percent():
    for label in ("R18 x1, D=128", "R18 x2, SPG sigmoid"):
        row = next(row for row in PAPER_ROWS if row.label == label)
        params = count_params(SPGNet(19, **row.arguments)) / 1e6
        assert abs(params / row.params_m - 1) < 0.01, (label, params, row.params_m)


def test_profile_command_prints_the_r18_row():
    """At the default size (1025x2049, the paper's) the R18 x1 row is the paper's network:
    the model's padding to 1056x2080 is not counted (it would add 4.6 %)."""
    out = subprocess.run(
        [sys.executable, "-m", "spgnet_keras.cli", "profile", "--rows", "R18 x1"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "Input 1025x2049" in out.stdout
    assert "| R18 x1, D=128 | 11.7 M | 11.66 M | -0.4 % | 107.6 B | 104.5 B | -2.9 % |" in out.stdout
