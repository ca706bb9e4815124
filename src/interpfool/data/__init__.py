"""LightningDataModules: synthetic (offline default), imagenet, collage, torchvision sets."""
from interpfool.data.synthetic import SHAPES, SyntheticSpec, render_collage, render_index
from interpfool.data.synthetic_datamodule import SyntheticDataModule

__all__ = ["SHAPES", "SyntheticDataModule", "SyntheticSpec", "render_collage", "render_index"]
