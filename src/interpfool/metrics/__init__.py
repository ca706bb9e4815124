"""Metrics as torchmetrics classes (they reduce correctly under DDP)."""
from interpfool.metrics.fsr import FoolingSuccessRate
from interpfool.metrics.localisation import Localisation, PointingGame, mass_inside, pointing_hits

__all__ = ["FoolingSuccessRate", "Localisation", "PointingGame", "mass_inside", "pointing_hits"]
