"""A grid of images and their heatmaps (rows: images; columns: the image, then one map per column),
in the style of Figure 2 of Heo et al. 2019. Maps are upsampled to the image size for display only."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from interpfool.interpreters.base import upsample_map  # noqa: E402


def save_heatmap_grid(images: torch.Tensor, columns: dict[str, torch.Tensor], path: str | Path,
                      row_titles: list[str] | None = None, cmap: str = "jet", alpha: float = 0.5) -> Path:
    """images: [N, 3, H, W] in [0, 1]; columns: title -> [N, h, w] maps. Writes a PNG, returns its path."""
    n = images.shape[0]
    cols = 1 + len(columns)
    fig, axes = plt.subplots(n, cols, figsize=(1.9 * cols, 1.9 * n), squeeze=False)
    size = tuple(images.shape[-2:])
    for i in range(n):
        img = images[i].permute(1, 2, 0).cpu().float().numpy()
        axes[i, 0].imshow(img)
        if row_titles:
            axes[i, 0].set_ylabel(row_titles[i], fontsize=7)
        for j, (title, maps) in enumerate(columns.items(), start=1):
            h = upsample_map(maps[i:i + 1].float(), size)[0].cpu().numpy()
            axes[i, j].imshow(img)
            axes[i, j].imshow(h, cmap=cmap, alpha=alpha, vmin=min(0.0, float(h.min())), vmax=max(1e-12, float(h.max())))
            if i == 0:
                axes[i, j].set_title(title, fontsize=8)
        if i == 0:
            axes[i, 0].set_title("image", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
