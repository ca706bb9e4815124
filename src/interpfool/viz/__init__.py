"""Figures: heatmap overlays and grids, curves."""
from interpfool.viz.curves import save_aopc_curves, save_robustness_curves, save_transfer_matrix
from interpfool.viz.heatmap_grid import save_heatmap_grid

__all__ = ["save_aopc_curves", "save_heatmap_grid", "save_robustness_curves", "save_transfer_matrix"]
