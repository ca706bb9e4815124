"""Figures: heatmap overlays and grids, curves."""
from interpfool.viz.heatmap_grid import save_heatmap_grid

__all__ = ["save_heatmap_grid"]
