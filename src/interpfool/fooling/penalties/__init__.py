"""Fooling objectives as pure functions of heatmaps (Heo et al. 2019, Sec. 3.2)."""
from interpfool.fooling.penalties.base import Fooling
from interpfool.fooling.penalties.location import LocationFooling, corner_mask, frame_mask

__all__ = ["Fooling", "LocationFooling", "corner_mask", "frame_mask"]
