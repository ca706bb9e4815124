"""Adversarial training of the classifier (Heo et al. 2019, Sec. 5, Figure 4c): "free" adversarial training
(Shafahi et al. 2019) for theta0 and for the fooling run, the minibatch replay it needs, and PGD top-1 as a
validation number. ``eps`` and step sizes are in pixel units ([0, 1] images); the model's input is normalised
with the data module's ``mean`` / ``std``."""
from interpfool.adversarial.free import FreeAdversary, PGDSpec, from_config, pixel_stats
from interpfool.adversarial.replay import ReplayLoader
from interpfool.adversarial.robust_accuracy import pgd_correct, pgd_top1

__all__ = ["FreeAdversary", "PGDSpec", "ReplayLoader", "from_config", "pgd_correct", "pgd_top1", "pixel_stats"]
