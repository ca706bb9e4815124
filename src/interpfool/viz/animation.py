"""Frames of heatmaps over training and their animation (Pillow; no matplotlib figure per frame, so a frame costs
milliseconds): one row of tiles, each the image with its map blended over it (jet), a title line naming the step.

An animated GIF always (Pillow is a dependency); an MP4 only where imageio and an ffmpeg binary exist (imageio-ffmpeg
or ``ffmpeg`` on the PATH) — nothing heavy is required for it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw

from interpfool.interpreters.base import upsample_map

TITLE_HEIGHT = 14


def display_range(h: torch.Tensor) -> torch.Tensor:
    """[N, H, W] maps scaled to [0, 1] per map for display, as ``save_heatmap_grid``: vmin = min(0, min h),
    vmax = max(max h, tiny), so a non-negative map keeps 0 as its floor and a signed one shows its negative part."""
    flat = h.flatten(1).float()
    low = flat.amin(1).clamp(max=0)[:, None, None]
    high = flat.amax(1).clamp(min=1e-12)[:, None, None]
    return ((h.float() - low) / (high - low)).clamp(0, 1)


def render_frame(images: torch.Tensor, maps: torch.Tensor, title: str = "", scale: int = 2,
                 alpha: float = 0.5, cmap: str = "jet") -> Image.Image:
    """images: [N, 3, H, W] in [0, 1]; maps: [N, h, w] (any resolution, upsampled bilinearly for display only).
    One RGB row of N tiles of (H * scale) x (W * scale) under a ``title`` line."""
    n, _, height, width = images.shape
    h = display_range(upsample_map(maps.detach().float().cpu(), (height, width)))
    colour = torch.from_numpy(matplotlib.colormaps[cmap](h.numpy())[..., :3]).float()      # [N, H, W, 3]
    img = images.detach().float().cpu().clamp(0, 1).permute(0, 2, 3, 1)
    if img.shape[-1] == 1:
        img = img.expand(-1, -1, -1, 3)
    tiles = ((1 - alpha) * img + alpha * colour).mul(255).round().to(torch.uint8)           # [N, H, W, 3]
    row = tiles.permute(1, 0, 2, 3).reshape(height, n * width, 3).numpy()
    canvas = Image.new("RGB", (n * width * scale, height * scale + TITLE_HEIGHT), "white")
    canvas.paste(Image.fromarray(row).resize((n * width * scale, height * scale), Image.NEAREST), (0, TITLE_HEIGHT))
    if title:
        ImageDraw.Draw(canvas).text((2, 1), title, fill="black")
    return canvas


def write_gif(frames: list[Image.Image], path: str | Path, duration_ms: int = 250) -> Path:
    """An animated GIF of ``frames`` (looping); every frame is kept (each carries its own step in its title)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    first, *rest = [f.convert("RGB") for f in frames]
    first.save(path, save_all=True, append_images=rest, duration=duration_ms, loop=0, optimize=False)
    return path


def mp4_available() -> bool:
    """Whether ``write_mp4`` can run here: imageio plus an ffmpeg binary (imageio-ffmpeg's or one on the PATH)."""
    try:
        import imageio  # noqa: F401
    except ImportError:
        return False
    try:
        import imageio_ffmpeg  # noqa: F401
        return True
    except ImportError:
        return shutil.which("ffmpeg") is not None


def write_mp4(frames: list[Image.Image], path: str | Path, fps: int = 4) -> Path | None:
    """An MP4 of ``frames`` where ``mp4_available()``, else None (nothing written)."""
    if not mp4_available():
        return None
    import imageio
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # even sizes for yuv420p
    w, h = frames[0].size
    size = (w + w % 2, h + h % 2)
    arrays = [np.asarray(f.convert("RGB").resize(size)) for f in frames]
    imageio.mimsave(path, arrays, fps=fps)
    return path
