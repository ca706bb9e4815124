"""Trainer(deterministic=True) on CUDA: adaptive_avg_pool2d's backward has no deterministic CUDA kernel and
every model has an AdaptiveAvgPool2d. CPU kernels are deterministic, so the CPU check is structural: the
double-backward step of a fooling loss must not dispatch ``_adaptive_avg_pool2d_backward`` (the op that
``torch.use_deterministic_algorithms`` refuses on CUDA) where the pooling ratio is an integer."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from interpfool import interpreters, models
from interpfool.models.determinism import deterministic_pooling, pooled


class Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def _adaptive_ops(net, size):
    net.eval()
    x = torch.randn(2, 3, size, size)
    cam = interpreters.build("gradcam", net)
    with Ops() as ops:
        fwd = cam.forward(x)
        h = cam.explain(fwd, "pred", create_graph=True)
        (torch.nn.functional.cross_entropy(fwd.logits, fwd.logits.argmax(1)) + h.square().mean()).backward()
    return {n for n in ops.names if "adaptive" in n}


@pytest.mark.parametrize("arch, size", [("small_vgg", 64), ("resnet50", 64), ("densenet121", 64), ("vgg19", 224)])
def test_fooling_step_uses_no_adaptive_pool_backward(arch, size):
    torch.manual_seed(0)
    kwargs = {"num_classes": 4, "width": 4, "hidden": 8} if arch == "small_vgg" else {"num_classes": 4}
    net = models.build(arch, pretrained=False, **kwargs) if arch != "small_vgg" else models.build(arch, **kwargs)
    assert _adaptive_ops(deterministic_pooling(net), size) == set()


def test_pipeline_builds_models_with_deterministic_pooling(compose_cfg):
    from interpfool.experiment.build import build_all

    net = build_all(compose_cfg(["data.train_size=8", "data.batch_size=8", "data.val_size=8", "data.test_size=8"])).net
    assert _adaptive_ops(net, 64) == set()


@pytest.mark.parametrize("shape, out", [((2, 3, 8, 8), 4), ((2, 3, 8, 8), 1), ((1, 2, 7, 7), (7, 7)),
                                        ((1, 2, 6, 9), (3, None)), ((1, 2, 7, 7), 3)])
def test_pooled_equals_adaptive_pooling(shape, out):
    x = torch.randn(shape, dtype=torch.float64)
    assert torch.allclose(pooled(x, out), torch.nn.functional.adaptive_avg_pool2d(x, out), atol=1e-12)


def test_tf32_and_cudnn_benchmark_are_config_and_off_by_default(compose_cfg, monkeypatch):
    from interpfool.experiment.build import build_all

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)         # PyTorch's default for convolutions
    small = ["data.train_size=8", "data.batch_size=8", "data.val_size=8", "data.test_size=8"]
    build_all(compose_cfg(small))
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.benchmark) == (False, False, False)
    build_all(compose_cfg(small + ["backends.allow_tf32=true", "backends.cudnn_benchmark=true"]))
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.benchmark
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.benchmark = False
    from interpfool.experiment.cli import one_line
    with pytest.raises(Exception) as err:              # the typed schema refuses it while composing
        compose_cfg(small + ["backends.allow_tf32=maybe"])
    assert one_line(err.value) == "backends.allow_tf32='maybe'; allowed: true or false"
