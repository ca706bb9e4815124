"""The offline synthetic benchmark (DESIGN.md 2.5): seeded shapes on cluttered backgrounds.

Every image is a pure function of (seed, index): a shape class drawn at a random position,
scale, rotation and colour over a cluttered background (smooth colour noise, stray strokes and
dots), with its ground-truth object mask. Nothing is read from disk. ``render_collage`` builds the
two-class 2x2 collage of the active fooling (Heo et al. 2019, Sec. 3.2.2), with one mask per class.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "ellipse", "crescent",
          "hexagon", "arrow")


def _generator(seed: int, index: int, stream: int = 0) -> torch.Generator:
    # Mix (seed, index, stream) into one 63-bit integer; the same triple gives the same images.
    key = (seed * 0x9E3779B1 + index * 0x85EBCA77 + stream * 0xC2B2AE3D) % (2 ** 63 - 1)
    return torch.Generator().manual_seed(key)


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def _polygon(u: torch.Tensor, v: torch.Tensor, sides: int, radius: float) -> torch.Tensor:
    """Inside a regular polygon of circumradius ``radius``: every half-plane test holds."""
    inside = torch.ones_like(u, dtype=torch.bool)
    apothem = radius * math.cos(math.pi / sides)
    for k in range(sides):
        angle = 2 * math.pi * k / sides
        inside &= u * math.cos(angle) + v * math.sin(angle) <= apothem
    return inside


def shape_mask(shape: str, u: torch.Tensor, v: torch.Tensor, radius: float) -> torch.Tensor:
    """Boolean mask of ``shape`` in centred, rotated coordinates (u, v) with size ``radius``."""
    r = torch.sqrt(u ** 2 + v ** 2)
    if shape == "circle":
        return r <= radius
    if shape == "square":
        return torch.maximum(u.abs(), v.abs()) <= 0.8 * radius
    if shape == "triangle":
        return _polygon(u, v, 3, radius)
    if shape == "hexagon":
        return _polygon(u, v, 6, radius)
    if shape == "star":
        theta = torch.atan2(v, u)
        return r <= radius * (0.5 + 0.5 * torch.cos(5 * theta) ** 2)
    if shape == "cross":
        arm = 0.32 * radius
        return ((u.abs() <= arm) & (v.abs() <= radius)) | ((v.abs() <= arm) & (u.abs() <= radius))
    if shape == "ring":
        return (r <= radius) & (r >= 0.55 * radius)
    if shape == "ellipse":
        return (u / radius) ** 2 + (v / (0.45 * radius)) ** 2 <= 1
    if shape == "crescent":
        return (r <= radius) & (torch.sqrt((u - 0.45 * radius) ** 2 + v ** 2) > 0.8 * radius)
    if shape == "arrow":
        shaft = (u.abs() <= 0.55 * radius) & (v.abs() <= 0.22 * radius) & (u <= 0.1 * radius)
        head = (u >= 0.0) & (u <= radius) & (v.abs() <= 0.75 * (radius - u))
        return shaft | head
    raise ValueError(f"unknown shape {shape!r}; allowed: {', '.join(SHAPES)}")


def _smooth_noise(gen: torch.Generator, size: int, cells: int) -> torch.Tensor:
    """[3, size, size] low-frequency colour noise in [0, 1] (bilinear upsampling of a coarse grid)."""
    coarse = torch.rand(1, 3, cells, cells, generator=gen)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)[0]


def _background(gen: torch.Generator, size: int, clutter: int) -> torch.Tensor:
    base = 0.25 + 0.5 * _smooth_noise(gen, size, 4)
    img = 0.7 * base + 0.3 * _smooth_noise(gen, size, 12)
    coords = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    for _ in range(clutter):  # stray strokes and dots in random colours
        colour = torch.rand(3, 1, 1, generator=gen)
        cx, cy = _uniform(gen, 0, size), _uniform(gen, 0, size)
        if float(torch.rand((), generator=gen)) < 0.5:
            angle = _uniform(gen, 0, math.pi)
            length = _uniform(gen, 0.15, 0.4) * size
            along = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
            across = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
            mark = (along.abs() <= length / 2) & (across.abs() <= 0.6)
        else:
            mark = (xx - cx) ** 2 + (yy - cy) ** 2 <= _uniform(gen, 0.8, 2.0) ** 2
        img = torch.where(mark, colour.expand_as(img), img)
    return img


@dataclass(frozen=True)
class SyntheticSpec:
    """What the generator draws. ``num_classes`` takes the first classes of ``SHAPES``."""

    size: int = 64
    num_classes: int = 8
    clutter: int = 6
    min_scale: float = 0.14   # shape radius as a fraction of the image side
    max_scale: float = 0.26

    def __post_init__(self):
        if not 2 <= self.num_classes <= len(SHAPES):
            raise ValueError(f"data.num_classes={self.num_classes}; allowed: 2..{len(SHAPES)}")
        if self.size < 16:
            raise ValueError(f"data.image_size={self.size}; allowed: >= 16")
        if not 0 < self.min_scale <= self.max_scale <= 0.45:
            raise ValueError(f"data.min_scale/max_scale=({self.min_scale}, {self.max_scale}); "
                             f"allowed: 0 < min_scale <= max_scale <= 0.45")


def render(spec: SyntheticSpec, label: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One image of class ``label``: ([3, S, S] in [0, 1], [S, S] bool object mask)."""
    size = spec.size
    img = _background(gen, size, spec.clutter)
    radius = _uniform(gen, spec.min_scale, spec.max_scale) * size
    margin = radius + 1
    cx, cy = _uniform(gen, margin, size - margin), _uniform(gen, margin, size - margin)
    angle = _uniform(gen, 0, 2 * math.pi)
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
    v = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
    mask = shape_mask(SHAPES[label], u, v, radius)
    # A saturated colour far from the local background mean, with a little texture.
    colour = torch.rand(3, generator=gen)
    local = img[:, mask].mean(1) if mask.any() else img.mean((1, 2))
    colour = torch.where((colour - local).abs() < 0.35, (local + 0.5) % 1.0, colour)
    texture = 0.08 * (torch.rand(3, size, size, generator=gen) - 0.5)
    obj = (colour[:, None, None] + texture).clamp(0, 1)
    return torch.where(mask, obj, img), mask


def render_index(spec: SyntheticSpec, seed: int, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Image ``index`` of the stream ``seed``: (image, mask, label); labels cycle through the classes,
    so every split is balanced."""
    gen = _generator(seed, index)
    label = index % spec.num_classes
    img, mask = render(spec, label, gen)
    return img, mask, label


def render_collage(spec: SyntheticSpec, seed: int, index: int, c1: int, c2: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """2x2 collage of half-size tiles of classes c1 and c2, both present, at random positions.

    Returns (image [3, S, S], masks [2, S, S] bool: object pixels of c1 and of c2).
    """
    if c1 == c2:
        raise ValueError(f"collage classes c1 == c2 == {c1}; allowed: two different classes")
    gen = _generator(seed, index, stream=1)
    classes = [c1, c2] + [c1 if float(torch.rand((), generator=gen)) < 0.5 else c2 for _ in range(2)]
    order = torch.randperm(4, generator=gen).tolist()
    tile_spec = SyntheticSpec(size=spec.size // 2, num_classes=spec.num_classes, clutter=max(1, spec.clutter // 2),
                              min_scale=min(0.3, spec.min_scale * 1.6), max_scale=min(0.42, spec.max_scale * 1.6))
    half = spec.size // 2
    img = torch.zeros(3, spec.size, spec.size)
    masks = torch.zeros(2, spec.size, spec.size, dtype=torch.bool)
    for slot, k in enumerate(order):
        tile, tile_mask = render(tile_spec, classes[k], gen)
        r, c = divmod(slot, 2)
        img[:, r * half:(r + 1) * half, c * half:(c + 1) * half] = tile
        masks[0 if classes[k] == c1 else 1, r * half:(r + 1) * half, c * half:(c + 1) * half] = tile_mask
    return img, masks
