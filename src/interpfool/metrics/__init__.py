"""Metrics as torchmetrics classes (sum states: they reduce correctly under DDP) and their pure helpers."""
from interpfool.metrics.aopc import AOPC, perturbation_order, perturbation_scores
from interpfool.metrics.com_shift import CentreOfMassShift, com_shift
from interpfool.metrics.fidelity import OutputFidelity, output_fidelity
from interpfool.metrics.fsr import FoolingSuccessRate
from interpfool.metrics.kendall import KendallCorrelation, kendall
from interpfool.metrics.localisation import Localisation, PointingGame, mass_inside, pointing_hits
from interpfool.metrics.mean import PerImageMean
from interpfool.metrics.mse import MapMSE, mse
from interpfool.metrics.pearson import PearsonCorrelation, pearson
from interpfool.metrics.robustness import perturb_parameters
from interpfool.metrics.similarity import MapSimilarity
from interpfool.metrics.spearman import SpearmanCorrelation, spearman
from interpfool.metrics.ssim import SSIM, ssim
from interpfool.metrics.topk_intersection import TopKIntersection, topk_intersection

__all__ = ["AOPC", "SSIM", "CentreOfMassShift", "FoolingSuccessRate", "KendallCorrelation", "Localisation", "MapMSE",
           "MapSimilarity", "OutputFidelity", "PearsonCorrelation", "PerImageMean", "PointingGame",
           "SpearmanCorrelation", "TopKIntersection", "com_shift", "kendall", "mass_inside", "mse", "output_fidelity",
           "pearson", "perturb_parameters", "perturbation_order", "perturbation_scores", "pointing_hits", "spearman",
           "ssim", "topk_intersection"]
