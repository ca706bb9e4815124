"""Sanity checks for saliency maps (Adebayo et al. 2018): model-parameter randomisation, cascading and independent,
and the similarity of each interpreter's maps to the maps of the unrandomised model."""
from interpfool.sanity.checks import randomisation_test
from interpfool.sanity.controls import EdgeDetector
from interpfool.sanity.randomize import cascading, independent, parameter_layers, randomize_layer
from interpfool.sanity.similarity import map_similarity

__all__ = ["EdgeDetector", "cascading", "independent", "map_similarity", "parameter_layers", "randomisation_test",
           "randomize_layer"]
