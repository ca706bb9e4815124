"""LightningDataModules: synthetic (offline default), Fashion-MNIST (idx files), imagenet, collage, torchvision sets."""
from interpfool.data.collage import CollageDataModule, build_collages, tile_masks
from interpfool.data.fashion_mnist import FashionMNISTDataModule
from interpfool.data.imagenet import IMAGENET_MEAN, IMAGENET_STD, ImageNetDataModule
from interpfool.data.synthetic import SHAPES, SyntheticSpec, render_collage, render_index
from interpfool.data.synthetic_datamodule import SyntheticDataModule
from interpfool.data.torchvision_sets import TorchvisionDataModule

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "SHAPES", "CollageDataModule", "FashionMNISTDataModule",
           "ImageNetDataModule", "SyntheticDataModule", "SyntheticSpec", "TorchvisionDataModule", "build_collages",
           "render_collage", "render_index", "tile_masks"]
