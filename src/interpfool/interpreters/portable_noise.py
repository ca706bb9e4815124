"""Gaussian noise that is the same on every device: a counter-based generator in plain tensor ops.

torch's generators differ per device (the CPU's Mersenne twister, CUDA's Philox), so a seeded SmoothGrad drew
other noise on a GPU than on the CPU, and its maps, FSR and fooled weights could not be compared across machines.
Here draw i of a stream is a pure function of (seed, i), computed where the result is needed:

* ``splitmix64(seed, start, count)``: outputs ``start .. start + count - 1`` of SplitMix64 seeded with ``seed``
  (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number generators", the ``mix64`` finaliser of
  Java's SplittableRandom): ``z = seed + (i + 1) * golden``, then two xor-shift-multiply rounds. int64 products
  wrap modulo 2**64 on the CPU and on CUDA alike, and shifts are made logical by a mask, so the bits are exact
  on both (tests compare them with a pure-Python SplitMix64).
* ``normal``: Box-Muller (Box & Muller 1958) on two 23-bit uniforms of each output, in float32 (the CPU's and
  CUDA's ``log`` / ``cos`` agree to a few ulp: the noise is equal across devices to float32 rounding).

Because a draw depends on its index only, a chunk of SmoothGrad copies draws its part of the stream directly:
the noise does not depend on ``chunk_size``, and a chunk recomputed in the backward draws the same noise with no state.
No host-device copy: the counters are made on the device by ``arange``.
"""
from __future__ import annotations

import math

import torch

_MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


def _as_int64(value: int) -> int:
    """The int64 whose two's-complement bits are ``value`` mod 2**64."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's ``>>`` is arithmetic on signed integers)."""
    return (z >> s).bitwise_and_((1 << (64 - s)) - 1)


def splitmix64(seed: int, start: int, count: int, device: torch.device | str | None = None) -> torch.Tensor:
    """[count] int64: outputs ``start .. start + count - 1`` of SplitMix64 seeded with ``seed`` (as unsigned bits)."""
    z = torch.arange(start + 1, start + count + 1, dtype=torch.int64, device=device)
    z.mul_(_as_int64(GOLDEN)).add_(_as_int64(seed))
    for shift, mix in ((30, MIX1), (27, MIX2)):
        z.bitwise_xor_(_shr(z, shift)).mul_(_as_int64(mix))
    return z.bitwise_xor_(_shr(z, 31))


def normal(shape: tuple[int, ...] | torch.Size, seed: int, offset: int = 0, dtype: torch.dtype = torch.float32,
           device: torch.device | str | None = None) -> torch.Tensor:
    """Standard normal draws ``offset .. offset + prod(shape) - 1`` of the stream ``seed``, shaped ``shape``.

    Box & Muller (1958), z = sqrt(-2 ln u1) cos(2 pi u2), on two 23-bit uniforms u = (2 h + 1) / 2**24 (exact in
    float32, in (0, 1)) from bits 41-63 and 9-31 of each output; |z| <= 5.77. The transform runs in float32: the
    CPU's and CUDA's log / cos agree to a few ulp, not bit for bit."""
    count = math.prod(shape)
    z = splitmix64(seed, offset, count, device)
    u1 = _shr(z, 41).mul_(2).add_(1).to(torch.float32).mul_(2.0 ** -24)
    u2 = (z >> 9).bitwise_and_((1 << 23) - 1).mul_(2).add_(1).to(torch.float32).mul_(2.0 ** -24)
    r = u1.log_().mul_(-2.0).sqrt_()
    return r.mul_(u2.mul_(2 * math.pi).cos_()).to(dtype).view(tuple(shape))


def draw_seed(generator: torch.Generator | None = None) -> int:
    """A stream seed from a host (CPU) generator, the global one by default: seeded runs stay reproducible, and
    reading a CPU tensor waits for no device."""
    return int(torch.randint(0, 2 ** 62, (1,), generator=generator).item())
