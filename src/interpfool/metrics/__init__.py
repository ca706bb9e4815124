"""Metrics as torchmetrics classes (sum states: they reduce correctly under DDP) and their pure helpers."""
from interpfool.metrics.aopc import AOPC, perturbation_order, perturbation_scores
from interpfool.metrics.fsr import FoolingSuccessRate
from interpfool.metrics.localisation import Localisation, PointingGame, mass_inside, pointing_hits
from interpfool.metrics.robustness import perturb_parameters
from interpfool.metrics.spearman import SpearmanCorrelation, spearman

__all__ = ["AOPC", "FoolingSuccessRate", "Localisation", "PointingGame", "SpearmanCorrelation", "mass_inside",
           "perturb_parameters", "perturbation_order", "perturbation_scores", "pointing_hits", "spearman"]
