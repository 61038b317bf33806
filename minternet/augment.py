"""Training augmentation: what is drawn, from which distribution (book chapter 2).

Two recipes, as the reference tabulates them (TN(-1, 1) is the standard normal truncated
to [-1, 1]; w', h' the padded box, s its square side):

============  ===========================================  ====================================
              :data:`MMPOSE` (mmpose 1.x config)           :data:`ORIGINAL` (InterNet's code)
============  ===========================================  ====================================
flip          p 0.5                                        p 0.5
shift         0.16 TN(-1, 1) (w', h'), p 0.3               U(-0.15, 0.15) s per axis, always
scale         s (1 + 0.5 TN(-1, 1)), always                s (1 + 0.25 clip(N(0, 1), -1, 1))
rotation      90 deg TN(-1, 1), p 0.6                      45 deg clip(N(0, 1), -2, 2), p 0.6
colour        none                                         each RGB channel x U(0.8, 1.2)
off-crop      joints keep their weight                     joints get validity 0
============  ===========================================  ====================================

:func:`sample_augmentation` turns a recipe and a generator into :class:`AugParams`, plain
numbers that :func:`minternet.transforms.make_sample` applies, so one sample's augmentation
can be recorded and replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


def bounded_noise(
    rng: np.random.Generator,
    dist: Literal["truncnorm", "clipnorm", "uniform"],
    bound: float,
    size: int | tuple[int, ...] = (),
) -> np.ndarray:
    """``size`` draws in [-bound, bound]: the standard normal truncated (redrawn until
    inside), the standard normal clipped (mass piles up at the bounds), or uniform.
    """
    if dist == "uniform":
        return rng.uniform(-bound, bound, size)
    draw = np.asarray(rng.standard_normal(size))
    if dist == "clipnorm":
        return np.clip(draw, -bound, bound)
    outside = np.abs(draw) > bound
    while outside.any():
        draw[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(draw) > bound
    return draw


@dataclass(frozen=True)
class Jitter:
    """``factor`` times a bounded draw with probability ``prob``, else 0."""

    factor: float
    prob: float = 1.0
    dist: Literal["truncnorm", "clipnorm", "uniform"] = "truncnorm"
    bound: float = 1.0

    def draw(self, rng: np.random.Generator, size: int | tuple[int, ...] = ()) -> np.ndarray:
        """``size`` values; the draw and the coin are always taken, so later draws from
        ``rng`` do not depend on how the coin fell.
        """
        value = self.factor * bounded_noise(rng, self.dist, self.bound, size)
        return value if rng.random() < self.prob else np.zeros_like(value)


@dataclass(frozen=True)
class Augmentation:
    """A training augmentation recipe (see the module table).

    Attributes:
        flip_prob: probability of a horizontal flip.
        shift: centre offset per axis, a fraction of ``shift_reference``.
        shift_reference: "box", the padded box's (w', h') (mmpose), or "square", its square
            side s on both axes (original).
        scale: the crop side s is multiplied by 1 + this draw.
        rotation: degrees.
        colour: each RGB channel is multiplied by U(1 - colour, 1 + colour); 0 for none.
        drop_outside: joints whose crop position leaves the crop get validity 0.
    """

    flip_prob: float
    shift: Jitter
    shift_reference: Literal["box", "square"]
    scale: Jitter
    rotation: Jitter
    colour: float = 0.0
    drop_outside: bool = False


MMPOSE = Augmentation(
    flip_prob=0.5,
    shift=Jitter(0.16, prob=0.3),
    shift_reference="box",
    scale=Jitter(0.5),
    rotation=Jitter(90.0, prob=0.6),
)
"""mmpose 1.3.2's InterNet config (RandomFlip, RandomBBoxTransform, no colour)."""

ORIGINAL = Augmentation(
    flip_prob=0.5,
    shift=Jitter(0.15, dist="uniform"),
    shift_reference="square",
    scale=Jitter(0.25, dist="clipnorm"),
    rotation=Jitter(45.0, prob=0.6, dist="clipnorm", bound=2.0),
    colour=0.2,
    drop_outside=True,
)
"""facebookresearch/InterHand2.6M's ``get_aug_config`` and its in-crop validity test."""


@dataclass(frozen=True)
class AugParams:
    """One sample's drawn augmentation; the defaults change nothing.

    Attributes:
        flip: mirror the image horizontally (and swap the hands).
        shift: (dx, dy) centre offset as fractions of the recipe's shift reference.
        scale: factor on the square crop side (> 1 zooms out).
        rotation: radians; see :func:`minternet.transforms.crop_matrix` for the direction.
        colour: (r, g, b) gains on the crop's channels.
    """

    flip: bool = False
    shift: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    rotation: float = 0.0
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)


IDENTITY = AugParams()
"""No augmentation: what evaluation uses."""


def sample_augmentation(rng: np.random.Generator, aug: Augmentation) -> AugParams:
    """Draw one sample's :class:`AugParams` from recipe ``aug``.

    Always the same number of draws in the same order, so the result is a function of the
    generator's state alone.
    """
    flip = bool(rng.random() < aug.flip_prob)
    shift = aug.shift.draw(rng, 2)
    scale = 1.0 + float(aug.scale.draw(rng))
    rotation = float(np.deg2rad(aug.rotation.draw(rng)))
    colour = rng.uniform(1.0 - aug.colour, 1.0 + aug.colour, 3)
    return AugParams(
        flip=flip,
        shift=(float(shift[0]), float(shift[1])),
        scale=scale,
        rotation=rotation,
        colour=(float(colour[0]), float(colour[1]), float(colour[2])),
    )
