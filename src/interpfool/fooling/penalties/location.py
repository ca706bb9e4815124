"""Location fooling (Heo et al. 2019, eq. 3 and App. B remark 1): make every map highlight a
fixed, uninformative region. penalty = mean over cells of (m - h)^2, h normalised."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from interpfool.fooling.penalties.base import Fooling

MASK_KINDS = ("frame", "corner")


def frame_mask(side: int, width: int | None = None) -> torch.Tensor:
    """1 on a frame of ``width`` cells (default side // 7, authors' code), 0 inside."""
    width = max(1, side // 7) if width is None else width
    if not 1 <= width <= side // 2:
        raise ValueError(f"fooling.width={width}; allowed: 1..{side // 2} for a {side}x{side} map")
    mask = torch.ones(side, side)
    mask[width:side - width, width:side - width] = 0
    return mask


def corner_mask(side: int, width: int | None = None) -> torch.Tensor:
    """1 on the top-left square of ``width`` cells (default side // 3), 0 elsewhere."""
    width = max(1, side // 3) if width is None else width
    if not 1 <= width <= side:
        raise ValueError(f"fooling.width={width}; allowed: 1..{side} for a {side}x{side} map")
    mask = torch.zeros(side, side)
    mask[:width, :width] = 1
    return mask


def load_mask(path: str) -> torch.Tensor:
    """A user mask: a 2-D tensor saved with torch.save, or a .npy array, values in [0, 1]."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"fooling.mask={path!r} is not a file; allowed: frame, corner, or a .pt/.npy file")
    if file.suffix == ".npy":
        import numpy as np
        mask = torch.from_numpy(np.load(file))
    else:
        mask = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
        raise ValueError(f"fooling.mask={path!r} must hold a 2-D array")
    return mask.float()


class LocationFooling(Fooling):
    """Heo eq. 3. ``mask``: "frame" (default), "corner" or a file; resized to the map's size."""

    name = "location"

    def __init__(self, mask: str = "frame", width: int | None = None, interval=(0.0, 0.2)):
        super().__init__(interval)
        if mask not in MASK_KINDS and not str(mask).endswith((".pt", ".pth", ".npy")):
            raise ValueError(f"fooling.mask={mask!r}; allowed: {', '.join(MASK_KINDS)} or a .pt/.npy file")
        self.kind, self.width = mask, width
        self._user = load_mask(mask) if mask not in MASK_KINDS else None
        self._cache: dict[tuple, torch.Tensor] = {}

    def mask_for(self, h: torch.Tensor) -> torch.Tensor:
        side_h, side_w = h.shape[-2:]
        key = (side_h, side_w, h.dtype, h.device)
        if key not in self._cache:
            if self._user is not None:
                mask = F.interpolate(self._user[None, None], size=(side_h, side_w), mode="nearest")[0, 0]
            else:
                if side_h != side_w:
                    raise ValueError(f"the {self.kind} mask needs square maps, got {side_h}x{side_w}")
                mask = (frame_mask if self.kind == "frame" else corner_mask)(side_h, self.width)
            self._cache[key] = mask.to(device=h.device, dtype=h.dtype)
        return self._cache[key]

    def penalty(self, h: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        return ((self.mask_for(h) - h) ** 2).flatten(1).mean(1)   # Heo eq. 3, per sample
