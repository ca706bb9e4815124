"""Fooling objectives (pure penalties) and the LightningModule that wires them."""
from interpfool.fooling.module import FoolingModule, frozen_copy
from interpfool.fooling.penalties import Fooling, LocationFooling

__all__ = ["Fooling", "FoolingModule", "LocationFooling", "frozen_copy"]
