"""Fooling objectives as pure functions of heatmaps (Heo et al. 2019, Sec. 3.2)."""
from interpfool.fooling.penalties.active import ActiveFooling
from interpfool.fooling.penalties.base import Fooling
from interpfool.fooling.penalties.center_mass import CenterMassFooling, center_of_mass
from interpfool.fooling.penalties.location import LocationFooling, corner_mask, frame_mask
from interpfool.fooling.penalties.topk import TopKFooling, top_cells

__all__ = ["ActiveFooling", "CenterMassFooling", "Fooling", "LocationFooling", "TopKFooling", "center_of_mass",
           "corner_mask", "frame_mask", "top_cells"]
