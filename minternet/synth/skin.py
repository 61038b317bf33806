"""What tells a right hand from a left one in a photograph: the skin's two sides (appendix A).

A right hand is the mirror image of a left one, so a hand drawn in one uniform colour looks
exactly like the other hand seen from the other side. Real hands are not the same on both
sides: the palm is lighter and pinker than the back, it carries flexion creases at the
joints, the nails sit on the back of the fingertips and the knuckles wrinkle on the back.
With those, the pixels say which side faces the camera, and with the thumb's side, which
hand it is. This module gives every capsule of a hand its palm-side direction and kind, and
turns a surface point's normal into an albedo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FINGER, FINGERTIP, PALM, FOREARM, SLEEVE = 1, 2, 3, 4, 5
"""Capsule kinds, :data:`CAPSULE_KINDS` order; 0 is plain skin of one colour."""
CAPSULE_KINDS = np.array([FINGERTIP, FINGER, FINGER, PALM] * 5 + [PALM] * 4 + [FOREARM, SLEEVE])
"""(26,) kind of each capsule of :func:`~minternet.synth.hand.hand_capsules`: bones ending at
local joint 0..19 (tip, two finger bones, the metacarpal per finger), the palm closers, the
forearm and the sleeve."""
NAIL = np.array([0.93, 0.82, 0.80])
"""RGB albedo of a fingernail: a translucent pinkish white, whatever the skin."""
PALM_SIDE = (-0.2, 0.3)
"""Cosines between the normal and the palm direction over which the back's albedo blends into
the palm's: the side of a finger is half one, half the other."""


@dataclass(frozen=True, eq=False)  # arrays: compare fields explicitly
class SkinSurface:
    """The two-sided skin of M capsules, for the renderer.

    palmar: (M, 3) unit vectors in the render's (camera) frame, the direction the palm side
    of each capsule faces. kind: (M,) int, :data:`CAPSULE_KINDS` codes (0: one colour).
    back, palm: (M, 3) RGB albedo in [0, 1] of the two sides; sleeve: (3,) RGB of the cloth.
    """

    palmar: np.ndarray
    kind: np.ndarray
    back: np.ndarray
    palm: np.ndarray
    sleeve: np.ndarray


PALM_PINK = np.array([1.0, 0.87, 0.83])
"""RGB the palm's albedo leans towards from the back's: light, pink, with little melanin."""


def palm_tone(back: np.ndarray) -> np.ndarray:
    """(..., 3) RGB albedo of the back of the hand -> that of the palm: part way to
    :data:`PALM_PINK`, further on darker skin, whose palms carry far less melanin than its
    backs."""
    back = np.asarray(back, dtype=np.float64)
    share = 0.45 + 0.3 * (1.0 - back.mean(axis=-1, keepdims=True))
    return back + share * (PALM_PINK - back)


def surface_albedo(
    normal: np.ndarray, along: np.ndarray, capsule: np.ndarray, surface: SkinSurface
) -> tuple[np.ndarray, np.ndarray]:
    """Albedo and extra gloss of N surface points.

    normal: (N, 3) unit, the render's frame; along: (N,) position along the capsule's axis,
    0 at its first end (towards the wrist), 1 at the second; capsule: (N,) int index into
    ``surface``'s rows. Returns (N, 3) RGB in [0, 1] and (N,) specular weight to add.
    """
    dtype = normal.dtype  # computed in the normals' precision
    facing = np.einsum("ij,ij->i", normal, surface.palmar.astype(dtype)[capsule])  # +1 palm
    lo, hi = PALM_SIDE
    palm_share = np.clip((facing - lo) / (hi - lo), 0.0, 1.0)
    palm_share = palm_share * palm_share * (3.0 - 2.0 * palm_share)  # smoothstep
    back, palm = surface.back.astype(dtype)[capsule], surface.palm.astype(dtype)[capsule]
    albedo = back + palm_share[:, None] * (palm - back)
    kind = surface.kind
    finger, tip = (kind == FINGER)[capsule], (kind == FINGERTIP)[capsule]
    digit = finger | tip
    darken = np.ones(len(capsule), dtype)
    # Flexion creases where a finger bends, on the palm side; one across the palm's middle.
    crease = (digit & (along < 0.1)) | (finger & (along > 0.9))
    crease |= (kind == PALM)[capsule] & (np.abs(along - 0.6) < 0.05)
    darken[crease & (facing > 0.35)] = 0.72
    darken[digit & (facing < -0.3) & (along < 0.14)] = 0.85  # wrinkled knuckles on the back
    albedo *= darken[:, None]
    nail = tip & (facing < -0.45) & (along > 0.3)
    albedo[nail] = NAIL
    albedo[(kind == SLEEVE)[capsule]] = surface.sleeve
    gloss = np.where(nail, 0.3, 0.0).astype(dtype)
    return albedo, gloss


def skin_tone(rng: np.random.Generator) -> np.ndarray:
    """(3,) RGB albedo in [0, 1], from very light to very dark human skin: darkness uniform
    between two end tones, with redness and yellowness wobbling a little on top.
    """
    light, dark = np.array([0.93, 0.78, 0.68]), np.array([0.30, 0.19, 0.13])
    tone = (light + rng.uniform() * (dark - light)) * (1.0 + rng.normal(0.0, [0.03, 0.02, 0.04]))
    return np.clip(tone * rng.uniform(0.92, 1.05), 0.0, 1.0)
