"""minternet: InterNet (Moon et al., ECCV 2020) for 3D interacting-hand pose, in small pieces."""

from minternet.augment import MMPOSE, ORIGINAL, Augmentation, AugParams
from minternet.camera import Camera
from minternet.codec import HeatmapCodec
from minternet.dataset import InterHandDataset
from minternet.loader import collate, make_loader
from minternet.model import InterNet
from minternet.transforms import make_sample, normalize

__all__ = [
    "MMPOSE",
    "ORIGINAL",
    "AugParams",
    "Augmentation",
    "Camera",
    "HeatmapCodec",
    "InterHandDataset",
    "InterNet",
    "collate",
    "make_loader",
    "make_sample",
    "normalize",
]
__version__ = "0.1.0"
