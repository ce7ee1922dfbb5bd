import subprocess
import sys

from spgnet_keras import SPGNet
from spgnet_keras.models import ablation_arguments
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


def test_paper_rows_cover_tables():
    tables = {t for row in PAPER_ROWS for t in row.tables.split(",")}
    assert tables == {"1", "3", "5", "6", "7", "9"}


def test_profile_command_prints_the_r18_row():
    out = subprocess.run(
        [sys.executable, "-m", "spgnet_keras.cli", "profile", "--rows", "R18 x1", "--height", "256", "--width", "512"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "| R18 x1, D=128 | 11.7 M | 11.66 M" in out.stdout
