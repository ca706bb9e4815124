"""Fooling objectives (pure penalties) and the LightningModule that wires them."""
from interpfool.fooling.module import FoolingModule, frozen_copy
from interpfool.fooling.penalties import ActiveFooling, CenterMassFooling, Fooling, LocationFooling, TopKFooling

__all__ = ["ActiveFooling", "CenterMassFooling", "Fooling", "FoolingModule", "LocationFooling", "TopKFooling",
           "frozen_copy"]
