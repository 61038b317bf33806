"""minternet: InterNet (Moon et al., ECCV 2020) for 3D interacting-hand pose, in small pieces."""

from minternet.camera import Camera
from minternet.interhand import InterHandDataset

__all__ = ["Camera", "InterHandDataset"]
__version__ = "0.1.0"
