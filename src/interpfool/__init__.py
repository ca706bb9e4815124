"""interpfool: test whether explanations of image classifiers can be trusted.

Public API (DESIGN.md section 3)::

    from interpfool import interpreters, models
    net = models.build("small_vgg", num_classes=8)
    cam = interpreters.build("gradcam", net)
    h = cam(x, "pred")                      # [B, H, W]
    h = cam(x, y, create_graph=True)        # exact second-order gradients w.r.t. parameters
"""
from interpfool import interpreters, models  # noqa: F401

__version__ = "0.1.0"
