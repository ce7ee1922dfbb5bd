"""Visualisation: colour maps, overlays, guided attention (paper Sec 4.5), confusion
matrices, training curves and the browsable evaluation report.

Figures are built on `matplotlib.figure.Figure` with the non-interactive Agg canvas (no
`pyplot`, so no global backend or figure state is touched); save them with `save_figure` or
`figure.savefig`.

Modules: `colors` (palettes, colour maps, overlays, legends), `attention` (guided
attention, Sec 4.5), `curves` (confusion matrix, training curves, the training-log reader)
and `report` (`write_report`: one static HTML page). Every name is importable from
`spgnet_keras.visualization` itself.
"""

from spgnet_keras.visualization.attention import (
    TOP_K,
    _class_indices,
    _spg_layer,
    attention_figure,
    attention_matrix,
    guided_attention_maps,
    top_attention_channels,
)
from spgnet_keras.visualization.colors import (
    _check_palette,
    _read_palette_file,
    colorize,
    default_palette,
    legend_handles,
    new_figure,
    overlay,
    overlay_figure,
    resolve_palette,
    save_figure,
)
from spgnet_keras.visualization.curves import plot_confusion_matrix, plot_training_curves, read_csv_log
from spgnet_keras.visualization.report import evaluate_report, write_report

__all__ = [
    "TOP_K",
    "attention_figure",
    "attention_matrix",
    "colorize",
    "default_palette",
    "evaluate_report",
    "guided_attention_maps",
    "legend_handles",
    "overlay",
    "overlay_figure",
    "plot_confusion_matrix",
    "plot_training_curves",
    "read_csv_log",
    "resolve_palette",
    "save_figure",
    "top_attention_channels",
    "write_report",
]
