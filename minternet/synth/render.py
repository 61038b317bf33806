"""A z-buffered, shaded capsule renderer (book appendix A).

Hands are unions of capsules (a segment swept by a ball) in camera space, millimetres,
OpenCV axes. The pixel at integer ``(u, v)`` casts the ray ``t (x, y, 1)`` through its
centre, ``x = (u - cx) / fx``, ``y = (v - cy) / fy``, so a hit's ray parameter ``t`` *is*
its camera depth Z. The test is analytic: the first hit of a union is the nearest first
hit of its parts, the finite cylinder's side and the two end balls (a flat cylinder end
lies inside its ball). Each capsule is tested on all pixels of its exact screen bounding
box in one vectorised step, and nowhere else; one reaching behind the camera plane is
tested on the whole image, one wholly behind it is skipped. A camera inside a capsule
sees through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from minternet.synth.skin import SkinSurface, surface_albedo

NEAR = 1.0
"""mm: hits closer to the camera plane than this are ignored."""
VISIBLE_TOLERANCE = 5.0
"""mm: how far in front of a joint's own surface another surface may lie and not hide it."""


@dataclass(frozen=True)
class Lighting:
    """Camera-space studio light: directional lights, ambient, a Blinn-Phong highlight of
    the first light and a rim term (grazing-angle brightening, a cheap stand-in for light
    scattered under the skin). Directions (L, 3) point from the surface to the lights.
    """

    directions: tuple[tuple[float, float, float], ...] = ((-0.4, -0.7, -0.6), (0.7, 0.1, -0.7))
    intensities: tuple[float, ...] = (0.75, 0.3)
    ambient: float = 0.25
    specular: float = 0.12
    shininess: float = 18.0
    rim: float = 0.18


@dataclass(frozen=True)
class Render:
    """One view. image: (H, W, 3) uint8 RGB; owner: (H, W) uint8, 0 on background, else the
    owner id (1 right, 2 left) of the front-most surface; depth: (H, W) float32 mm, camera
    Z of the front-most surface, +inf on background.
    """

    image: np.ndarray
    owner: np.ndarray
    depth: np.ndarray


def _screen_boxes(
    seg: np.ndarray, radii: np.ndarray, focal: np.ndarray, princpt: np.ndarray, size: tuple
) -> list:
    """[col0, col1, row0, row1] inclusive pixel ranges each capsule may cover, per capsule.

    The largest X/Z over a capsule is reached on an end ball (X/Z >= k is a half-space
    through the camera), and a ball's extremes are its tangents from the camera, slopes
    (X Z +- r sqrt(X^2 + Z^2 - r^2)) / (Z^2 - r^2). Empty ranges have col1 < col0.
    """
    z, r = seg[..., 2], radii[:, None]
    in_front = (z - r > NEAR).all(axis=1)
    straddles = ~in_front & ((z + r).max(axis=1) > NEAR)
    denom = np.where(in_front[:, None], z**2 - r**2, 1.0)
    bounds = []
    for axis, limit in ((0, size[0]), (1, size[1])):
        c = seg[..., axis]
        root = r * np.sqrt(np.maximum(c**2 + z**2 - r**2, 0.0))
        lo = ((c * z - root) / denom).min(axis=1) * focal[axis] + princpt[axis]
        hi = ((c * z + root) / denom).max(axis=1) * focal[axis] + princpt[axis]
        # One pixel of slack against rounding; a straddling capsule may land anywhere.
        lo = np.where(straddles, 0, np.clip(np.ceil(lo - 1), 0, limit))
        hi = np.where(straddles, limit - 1, np.clip(np.floor(hi + 1), -1, limit - 1))
        bounds += [np.where(in_front | straddles, lo, 1), np.where(in_front | straddles, hi, 0)]
    return np.stack(bounds, axis=1).astype(np.int64).tolist()


def _first_hits(
    x: np.ndarray, y: np.ndarray, dd: np.ndarray, a_end: list, axis: list, radius: float
) -> np.ndarray:
    """(h, w) depth of the first hit of the rays (x, y, 1) on one capsule, inf if none.

    x: (1, w), y: (h, 1) ray slopes; dd: (h, w), x^2 + y^2 + 1; a_end: [X, Y, Z] mm of one
    end; axis: [X, Y, Z] mm from it to the other end; radius: mm.
    """
    ax, ay, az = axis
    baba = ax * ax + ay * ay + az * az
    adotb = ax * a_end[0] + ay * a_end[1] + az * a_end[2]
    ball_a = a_end[0] ** 2 + a_end[1] ** 2 + a_end[2] ** 2 - radius * radius
    bard = (ax * x + az) + ay * y
    da = (a_end[0] * x + a_end[2]) + a_end[1] * y
    db = da + bard  # d.B with B = A + axis
    # Infinite cylinder |P - A - ((P - A).ba / ba.ba) ba|^2 = r^2 with P = t d, times ba.ba;
    # its quadratic term vanishes only for rays along the axis (or a bare ball): a nan miss.
    qa = baba * dd - bard * bard
    qb = adotb * bard - baba * da
    with np.errstate(invalid="ignore", divide="ignore"):
        t_cyl = (-qb - np.sqrt(qb * qb - qa * (baba * ball_a - adotb * adotb))) / qa
        along = t_cyl * bard - adotb  # ba.(P - A): the hit must lie between the ends
        t_cyl[(along < 0) | (along > baba)] = np.nan
        # Balls |t d - E|^2 = r^2: near root (d.E - sqrt((d.E)^2 - dd (|E|^2 - r^2))) / dd.
        t_a = (da - np.sqrt(da * da - dd * ball_a)) / dd
        t_b = (db - np.sqrt(db * db - dd * (ball_a + 2 * adotb + baba))) / dd
    best = np.full(dd.shape, np.inf)
    for t in (t_cyl, t_a, t_b):  # a nan (a miss) compares False
        np.minimum(best, t, out=best, where=t > NEAR)
    return best


def _surface(hit: np.ndarray, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals (N, 3) and axis positions (N,) in [0, 1] of surface points ``hit``
    (N, 3) mm on capsules ``seg`` (N, 2, 3): the normal is the hit point minus its closest
    point on the capsule's axis."""
    rel, axis = hit - seg[:, 0], seg[:, 1] - seg[:, 0]
    along = np.einsum("ij,ij->i", rel, axis) / np.maximum(np.einsum("ij,ij->i", axis, axis), 1e-9)
    np.clip(along, 0.0, 1.0, out=along)
    normal = rel - along[:, None] * axis
    length = np.sqrt(np.einsum("ij,ij->i", normal, normal))
    return normal / np.maximum(length, 1e-9)[:, None], along


def _shade(
    hit: np.ndarray, normal: np.ndarray, albedo: np.ndarray, gloss: np.ndarray, light: Lighting
) -> np.ndarray:
    """(N, 3) RGB in [0, 1] of surface points ``hit`` (N, 3) mm with unit ``normal`` (N, 3),
    ``albedo`` (N, 3) and extra specular weight ``gloss`` (N,)."""
    dtype = normal.dtype  # float32 is plenty for 8-bit colours, and faster
    view = -hit / np.sqrt(np.einsum("ij,ij->i", hit, hit))[:, None]
    lights = np.asarray(light.directions, dtype=dtype)
    lights /= np.linalg.norm(lights, axis=1, keepdims=True)
    intensities = np.asarray(light.intensities, dtype=dtype)
    diffuse = light.ambient + np.maximum(normal @ lights.T, 0.0) @ intensities
    half = lights[0] + view
    half /= np.maximum(np.sqrt(np.einsum("ij,ij->i", half, half)), 1e-9)[:, None]
    highlight = np.maximum(np.einsum("ij,ij->i", normal, half), 0.0) ** light.shininess
    spec = (light.specular + gloss) * highlight
    rim = light.rim * (1.0 - np.clip(np.einsum("ij,ij->i", normal, view), 0.0, 1.0)) ** 3
    return np.clip(albedo * (diffuse + rim)[:, None] + spec[:, None], 0.0, 1.0)


def render_capsules(
    segments: np.ndarray,
    radii: np.ndarray,
    owner: np.ndarray,
    colors: np.ndarray | Mapping[int, np.ndarray],
    focal: np.ndarray,
    princpt: np.ndarray,
    size: tuple[int, int],
    background: np.ndarray | None = None,
    lighting: Lighting = Lighting(),
    shade_jitter: float = 0.04,
    soften: float = 0.6,
    surface: SkinSurface | None = None,
) -> Render:
    """Ray-cast capsules with a z-buffer into an image, an owner (id) mask and a depth map.

    segments: (M, 2, 3) mm, camera space, the two ends of each capsule's axis; radii: (M,)
    mm; owner: (M,) int, 1 right hand, 2 left hand; colors: (M, 3) or (3,) RGB albedo in
    [0, 1], or a mapping owner id -> (3,); focal, princpt: (2,) px; size: (width, height)
    px; background: (H, W, 3) uint8 RGB, None for black. shade_jitter: relative brightness
    spread between capsules, a fixed function of the index, so fingers differ a little.
    soften: px, Gaussian sigma over the final image (0: none), since real frames are a bit
    soft and hard aliased silhouettes would be an easy cue for a network. surface: the
    capsules' two-sided skin (:class:`~minternet.synth.skin.SkinSurface`), which replaces
    ``colors``; None: each capsule one colour all round.
    """
    width, height = size
    seg = np.asarray(segments, dtype=np.float64).reshape(-1, 2, 3)
    radii = np.asarray(radii, dtype=np.float64).reshape(-1)
    owner, focal, princpt = np.asarray(owner).reshape(-1), np.asarray(focal), np.asarray(princpt)
    if not (np.isfinite(seg).all() and np.isfinite(radii).all()):
        raise ValueError("render_capsules: segments and radii must be finite")
    if background is not None and background.shape != (height, width, 3):
        raise ValueError(f"background is {background.shape}, size {size} is (width, height)")
    if isinstance(colors, Mapping):
        albedo = np.array([colors[int(o)] for o in owner], dtype=np.float64).reshape(-1, 3)
    else:
        albedo = np.broadcast_to(np.asarray(colors, dtype=np.float64), (len(seg), 3))
    jitter = (1.0 + shade_jitter * np.sin(2.4 * np.arange(len(seg)))).astype(np.float32)

    xs = ((np.arange(width) - princpt[0]) / focal[0])[None, :]
    ys = ((np.arange(height) - princpt[1]) / focal[1])[:, None]
    dd = xs * xs + ys * ys + 1.0
    depth = np.full((height, width), np.inf)
    winner = np.full((height, width), -1, dtype=np.int64)
    for i, (c0, c1, r0, r1) in enumerate(_screen_boxes(seg, radii, focal, princpt, size)):
        if c1 < c0 or r1 < r0:
            continue
        rows, cols = slice(r0, r1 + 1), slice(c0, c1 + 1)
        a_end, axis = seg[i, 0].tolist(), (seg[i, 1] - seg[i, 0]).tolist()
        t = _first_hits(xs[:, cols], ys[rows], dd[rows, cols], a_end, axis, float(radii[i]))
        closer = t < depth[rows, cols]  # strict: of equal depths the lower index stays
        depth[rows, cols][closer] = t[closer]
        winner[rows, cols][closer] = i

    drawn = np.flatnonzero(winner >= 0)
    cap, row, col = winner.reshape(-1)[drawn], drawn // width, drawn % width
    # Shading in float32: the hit points and normals need far less than float64 for 8-bit
    # colours, and the per-pixel work is most of a view's time.
    hit = np.column_stack([xs[0, col], ys[row, 0], np.ones(len(drawn))])
    hit = (hit * depth.reshape(-1)[drawn, None]).astype(np.float32)
    image = np.zeros((height, width, 3), np.uint8) if background is None else background.copy()
    normal, along = _surface(hit, seg.astype(np.float32)[cap])
    if surface is None:
        albedo_px, gloss = albedo[cap], np.zeros(len(cap))
    else:
        albedo_px, gloss = surface_albedo(normal, along, cap, surface)
    albedo_px = albedo_px * jitter[cap, None]
    image[row, col] = np.rint(255.0 * _shade(hit, normal, albedo_px, gloss, lighting))
    if soften > 0:
        image = cv2.GaussianBlur(image, (0, 0), soften)
    owner_map = np.zeros((height, width), np.uint8)
    owner_map[row, col] = owner[cap]
    return Render(image, owner_map, depth.astype(np.float32))


def to_grey(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W, 3) uint8, BT.601 luminance in all three channels, as
    InterHand2.6M stores its monochrome cameras' frames.
    """
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG file bytes; libjpeg is deterministic for equal input."""
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cv2 could not encode a {image.shape} {image.dtype} image as JPEG")
    return data.tobytes()


def joint_visible(
    render: Render,
    joint_cam: np.ndarray,
    owner_of_joint: np.ndarray,
    joint_radius: np.ndarray,
    focal: np.ndarray,
    princpt: np.ndarray,
) -> np.ndarray:
    """(K,) bool, whether each joint is seen rather than hidden by either hand.

    joint_cam: (K, 3) mm, camera space; owner_of_joint: (K,) int owner ids; joint_radius:
    (K,) or scalar mm, the flesh around the joint (its capsule radius). Visible means: in
    front of the camera (Z > NEAR), projection (u, v) inside the image (0 <= u <= W - 1,
    0 <= v <= H - 1, as the labels' ``joint_valid``), the nearest pixel showing the joint's
    own hand, and that surface not far in front of the joint, ``depth >= Z - joint_radius
    - VISIBLE_TOLERANCE``; the last test catches a finger of the same hand crossing over.
    """
    joint_cam = np.asarray(joint_cam, dtype=np.float64).reshape(-1, 3)
    height, width = render.owner.shape
    z = joint_cam[:, 2]
    ahead = z > NEAR
    uv = joint_cam[:, :2] / np.where(ahead, z, 1.0)[:, None] * focal + princpt
    inside = ahead & (uv >= 0).all(axis=1) & (uv[:, 0] <= width - 1) & (uv[:, 1] <= height - 1)
    col, row = np.rint(np.where(inside[:, None], uv, 0.0)).astype(np.int64).T
    own = render.owner[row, col] == np.asarray(owner_of_joint).reshape(-1)
    near_enough = render.depth[row, col] >= z - np.asarray(joint_radius) - VISIBLE_TOLERANCE
    return inside & own & near_enough
