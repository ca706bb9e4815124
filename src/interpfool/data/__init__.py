"""LightningDataModules: synthetic (offline default), imagenet, collage, torchvision sets."""
from interpfool.data.collage import CollageDataModule, build_collages, tile_masks
from interpfool.data.imagenet import IMAGENET_MEAN, IMAGENET_STD, ImageNetDataModule
from interpfool.data.synthetic import SHAPES, SyntheticSpec, render_collage, render_index
from interpfool.data.synthetic_datamodule import SyntheticDataModule
from interpfool.data.torchvision_sets import TorchvisionDataModule

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "SHAPES", "CollageDataModule", "ImageNetDataModule", "SyntheticDataModule",
           "SyntheticSpec", "TorchvisionDataModule", "build_collages", "render_collage", "render_index", "tile_masks"]
