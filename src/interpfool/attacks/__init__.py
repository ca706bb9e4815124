"""Input attacks: pure batched functions of (model, input) with eps and step sizes in pixel units.

* ``fgsm`` (Goodfellow et al. 2015), ``gradient_step`` (the notes' max-normalised gradient step),
  ``pgd`` / ``bim`` (Madry et al. 2018 / Kurakin et al. 2017), ``random_noise`` (the control);
* ``explanation_attack``: move an explanation map while the output stays (Dombrowski et al. 2019;
  Ghorbani et al. 2019's top-k and center-mass attacks via the fooling penalties).

Every attack takes ``mean`` / ``std`` (the model input's normalisation; default none) and ``clamp`` (valid pixel
range, default (0, 1)), returns the adversarial batch in the model's input space, and leaves the model's
parameters and their ``.grad`` untouched. Put the model in eval mode first (the caller's job).
"""
from interpfool.attacks.explanation import explanation_attack
from interpfool.attacks.fgsm import fgsm
from interpfool.attacks.gradient_step import gradient_step
from interpfool.attacks.noise import random_noise
from interpfool.attacks.pgd import bim, pgd
from interpfool.attacks.pixels import PixelSpace

__all__ = ["PixelSpace", "bim", "explanation_attack", "fgsm", "gradient_step", "pgd", "random_noise"]
