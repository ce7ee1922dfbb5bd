"""Visualisation: colour maps, overlays, guided attention (paper Sec 4.5), confusion
matrices, training curves and the browsable evaluation report.

Figures are built on `matplotlib.figure.Figure` with the non-interactive Agg canvas (no
`pyplot`, so no global backend or figure state is touched); save them with `save_figure` or
`figure.savefig`.

Modules: `colors` (palettes, colour maps, overlays, legends), `attention` (guided
attention, Sec 4.5), `curves` (confusion matrix, training curves, the training-log reader),
`panels` (error maps) and `report` (`write_report`: one static HTML page). Every name is importable from
`spgnet_keras.visualization` itself.
"""

# The private names are re-exported for the callers of the former visualization.py module.
from spgnet_keras.visualization.attention import (
    TOP_K,
    attention_figure,
    attention_matrix,
    guided_attention_maps,
    top_attention_channels,
)
from spgnet_keras.visualization.attention import _class_indices as _class_indices
from spgnet_keras.visualization.attention import _spg_layer as _spg_layer
from spgnet_keras.visualization.colors import _check_palette as _check_palette
from spgnet_keras.visualization.colors import _read_palette_file as _read_palette_file
from spgnet_keras.visualization.colors import (
    colorize,
    default_palette,
    legend_handles,
    overlay,
    overlay_figure,
    resolve_palette,
    save_figure,
)
from spgnet_keras.visualization.colors import new_figure as new_figure
from spgnet_keras.visualization.curves import plot_confusion_matrix, plot_training_curves, read_csv_log
from spgnet_keras.visualization.panels import error_map
from spgnet_keras.visualization.report import evaluate_report, write_report

__all__ = [
    "TOP_K",
    "attention_figure",
    "attention_matrix",
    "colorize",
    "default_palette",
    "error_map",
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
