"""The counter-based noise of SmoothGrad (``interpreters.portable_noise``): SplitMix64 bit for bit against a
pure-Python SplitMix64 (Steele et al. 2014), Gaussian draws, a stream that does not depend on how it is cut, and
SmoothGrad's use of it (chunking, seeding from the global RNG, the device's own generator still selectable)."""
import pytest
import torch
from scipy import stats

from interpfool import interpreters, models
from interpfool.interpreters import portable_noise

MASK = (1 << 64) - 1


def splitmix64_reference(seed: int, i: int) -> int:
    """Output i of SplitMix64 (Java's SplittableRandom.mix64 over seed + (i + 1) * golden), Python integers."""
    z = (seed + (i + 1) * 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


@pytest.mark.parametrize("seed", [0, 1, 12345, 2 ** 62 - 1, 2 ** 63 + 7, 2 ** 64 - 1])
def test_splitmix64_equals_a_pure_python_splitmix64(seed):
    got = portable_noise.splitmix64(seed, 1_000_000, 257)
    assert [g & MASK for g in got.tolist()] == [splitmix64_reference(seed, 1_000_000 + j) for j in range(257)]


def test_known_first_output_of_splitmix64_seed_0():
    # first output of SplitMix64 seeded with 0, as published with the reference implementation (prng.di.unimi.it)
    assert portable_noise.splitmix64(0, 0, 1).item() & MASK == 0xE220A8397B1DCDAF


def test_normal_draws_are_standard_normal():
    z = portable_noise.normal((400_000,), seed=3)
    assert abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1) < 0.01
    assert stats.kstest(z[:50_000].double().numpy(), "norm").pvalue > 1e-3
    assert z.abs().max().item() <= 5.78                        # 23-bit uniforms: sqrt(-2 ln 2**-24)
    assert not torch.equal(z, portable_noise.normal((400_000,), seed=4))


def test_the_stream_does_not_depend_on_how_it_is_cut():
    whole = portable_noise.normal((6, 2, 5), seed=9)
    parts = torch.cat([portable_noise.normal((k, 2, 5), seed=9, offset=start * 10) for start, k in ((0, 2), (2, 3), (5, 1))])
    assert torch.equal(whole, parts)
    assert portable_noise.normal((3,), seed=9, dtype=torch.float64).dtype == torch.float64


@pytest.fixture(scope="module")
def net_and_batch():
    torch.manual_seed(0)
    net = models.build("small_vgg", num_classes=4, width=4, hidden=8).eval()
    return net, torch.randn(3, 3, 16, 16), torch.tensor([0, 1, 3])


def test_smoothgrad_noise_is_the_portable_stream_and_independent_of_chunk_size(net_and_batch):
    net, x, y = net_and_batch
    sg = interpreters.build("smoothgrad", net, n=5, seed=11)
    noise = sg.noise(x)
    std = sg.noise_std(x)
    assert torch.equal(noise, portable_noise.normal((5, *x.shape), 11) * std)
    whole = sg(x, y)
    chunked = interpreters.build("smoothgrad", net, n=5, seed=11, chunk_size=2)(x, y)
    torch.testing.assert_close(chunked, whole, rtol=1e-6, atol=1e-7)


def test_smoothgrad_without_a_seed_draws_its_stream_from_the_global_rng(net_and_batch):
    net, x, y = net_and_batch
    sg = interpreters.build("smoothgrad", net, n=4)
    torch.manual_seed(5)
    a = sg(x, y)
    b = sg(x, y)                                             # the next call: fresh noise
    torch.manual_seed(5)
    assert torch.equal(sg(x, y), a) and not torch.equal(a, b)


def test_the_devices_own_generator_stays_selectable(net_and_batch):
    net, x, y = net_and_batch
    native = interpreters.build("smoothgrad", net, n=4, seed=2, rng="torch")
    std = native.noise_std(x)
    gen = torch.Generator().manual_seed(2)
    expected = torch.stack([torch.randn(x.shape, generator=gen) * std for _ in range(4)])
    assert torch.equal(native.noise(x), expected)
    assert not torch.equal(native.noise(x), interpreters.build("smoothgrad", net, n=4, seed=2).noise(x))
    with pytest.raises(ValueError, match="rng='philox'; allowed: portable, torch"):
        interpreters.build("smoothgrad", net, rng="philox")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the GPU script runs it: bench/gpu_checks.py)")
def test_the_same_noise_on_cuda_as_on_the_cpu():
    cpu = portable_noise.normal((1_000_000,), seed=21)
    cuda = portable_noise.normal((1_000_000,), seed=21, device="cuda").cpu()
    assert torch.equal(portable_noise.splitmix64(21, 0, 4096), portable_noise.splitmix64(21, 0, 4096, "cuda").cpu())
    torch.testing.assert_close(cuda, cpu, rtol=1e-5, atol=1e-5)
