"""A torch.compile'd model: the interpreters explain its original module (aot_autograd has no double backward,
and the compiled wrapper renames every module `_orig_mod.<name>`, so `layer=` lookups failed)."""
import pytest
import torch

from interpfool import interpreters, models


@pytest.mark.parametrize("name", ["gradcam", "lrpT", "simplegT"])
def test_compiled_model_is_explained_through_its_original_module(name):
    torch.manual_seed(0)
    net = models.build("small_vgg", num_classes=4, width=4, hidden=8).eval()
    compiled = torch.compile(net)                  # lazy: nothing is compiled until it is called
    layer = net.target_layer
    x = torch.randn(2, 3, 32, 32)
    h = interpreters.build(name, compiled, layer=layer)(x, "pred", create_graph=True)
    assert torch.allclose(h, interpreters.build(name, net, layer=layer)(x, "pred", create_graph=True))
    h.sum().backward()
    assert any(p.grad is not None for p in net.parameters())
