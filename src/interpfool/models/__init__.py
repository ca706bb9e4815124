"""Model builders, target layers, activation capture and the pre-softmax manipulation."""
from interpfool.models.activations import capture_inputs, forward_with_activation
from interpfool.models.builders import MODEL_NAMES, build, disable_inplace, resolve_module

__all__ = ["MODEL_NAMES", "build", "capture_inputs", "disable_inplace", "forward_with_activation",
           "resolve_module"]
