"""minternet: InterNet (Moon et al., ECCV 2020) for 3D interacting-hand pose, in small pieces.

``minternet.predict`` is the function (one image and a box in, both hands out); its module
is reached as ``from minternet.predict import ...``.
"""

from minternet.augment import MMPOSE, ORIGINAL, Augmentation, AugParams
from minternet.camera import Camera
from minternet.codec import HeatmapCodec
from minternet.dataset import InterHandDataset
from minternet.loader import collate, make_loader
from minternet.model import InterNet
from minternet.predict import Prediction, predict
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
    "Prediction",
    "collate",
    "make_loader",
    "make_sample",
    "normalize",
    "predict",
]
__version__ = "0.1.0"
