"""Model builders, target layers, activation capture and the pre-softmax manipulation."""
from interpfool.models.activations import capture_inputs, forward_with_activation
from interpfool.models.builders import MODEL_NAMES, build, disable_inplace, resolve_module
from interpfool.models.presoftmax import PresoftmaxShifted, feeding_cells, presoftmax_shift

__all__ = ["MODEL_NAMES", "PresoftmaxShifted", "build", "capture_inputs", "disable_inplace", "feeding_cells",
           "forward_with_activation", "presoftmax_shift", "resolve_module"]
