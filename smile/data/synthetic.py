"""Synthetic CelebA: cartoon faces in the official CelebA file layout, for tests and quick demos.

Every label of the 40 CelebA attributes is drawn at random; about a dozen of them (Smiling,
Mouth_Slightly_Open, Eyeglasses, Male, Bangs, the four hair colours, Wearing_Hat, Pale_Skin, Young
and more) are rendered visibly and consistently. Smiling is drawn independently of everything else
and shows only in the mouth's shape: an upturned arc (closed) or an open U with, often, a band of
teeth, versus a straight or slightly downturned line (closed) or a flat, symmetric parted-lips
shape (open). The same seed gives byte-identical files.

Usage: ``smile synthetic OUT --num_images 3000 --seed 0``.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import shutil
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from smile.data.celeba import ALIGNED_SIZE, CELEBA_ATTRIBUTES

WIDTH, HEIGHT = ALIGNED_SIZE
IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
BBOX_FILE = "list_bbox_celeba.txt"
LANDMARKS_FILE = "list_landmarks_align_celeba.txt"
ANNOTATION_FILES = (ATTR_FILE, PARTITION_FILE, IDENTITY_FILE, BBOX_FILE, LANDMARKS_FILE)
#: Written beside the annotation files: says the faces are drawn, so that a model trained on them can say so.
MARKER_FILE = "smile-synthetic.json"
LANDMARK_NAMES = (
    "lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
    "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y",
)  # fmt: skip

# Faces are laid out in units relative to the face centre (about (89, 125) in the 178x218 image),
# which puts the eyes, nose and mouth corners near CelebA's aligned means.
_EYE_Y, _NOSE_Y, _MOUTH_Y = -14.0, 10.0, 27.0
_THETA = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
_COS, _SIN = np.cos(_THETA), np.sin(_THETA)
_CIRCLE = np.stack([_COS[::2], _SIN[::2]], 1)  # 24-point unit circle
_SQUIRCLE = np.stack([np.sign(_COS) * np.abs(_COS) ** 0.4, np.sign(_SIN) * np.abs(_SIN) ** 0.4], 1)
SMILE_WIDENING = 1.35  # a smile pulls the mouth's corners outwards
_T = np.linspace(-1.0, 1.0, 15)  # parameter along the mouth, corner to corner
_GRID_Y, _GRID_X = np.mgrid[-7:8:2, -7:8:2] / 8.0  # cell centres of an 8x8 grid over [-1, 1]

_SKIN_TONES = np.array(
    [(238, 204, 180), (226, 184, 154), (204, 156, 120), (168, 118, 86), (122, 84, 60), (88, 60, 44)], float
)
_PALE_TONES = np.array([(252, 236, 228), (244, 222, 210)], float)
_HAIR = {  # base colour and jitter; None is an unlabelled (auburn) colour
    "Black_Hair": ((24, 20, 18), 8),
    "Brown_Hair": ((108, 66, 38), 12),
    "Blond_Hair": ((226, 194, 128), 12),
    "Gray_Hair": ((178, 178, 182), 18),
    None: ((156, 68, 38), 12),
}
_BLACK = Image.new("RGB", (WIDTH, HEIGHT))
_EYE_COLOURS = ((70, 45, 25), (40, 28, 20), (70, 110, 160), (80, 120, 70), (110, 85, 45))


class RenderedFace(NamedTuple):
    """A rendered face: the RGB image (before JPEG), its 10 landmark values and its face box."""

    image: Image.Image
    landmarks: tuple[int, ...]  # lefteye_x, lefteye_y, ..., rightmouth_y, as in LANDMARK_NAMES
    bbox: tuple[int, int, int, int]  # x_1, y_1, width, height


@dataclass(frozen=True)
class Identity:
    """What stays the same across one person's images."""

    label: int  # identity number written in identity_CelebA.txt
    attributes: dict[str, bool]  # the identity-level subset of the 40 labels
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    eye: tuple[int, int, int]
    hair_volume: float
    face_rx: float
    face_ry_up: float
    face_ry_down: float
    jaw_power: float
    eye_dx: float
    eye_open: float
    brow_width: float
    brow_arch: float
    nose_width: float
    mouth_hw: float
    lip_width: float
    long_hair: bool
    bangs_prone: bool
    glasses_prone: bool


@dataclass(frozen=True)
class FaceParams:
    """Everything :func:`render_face` needs; rendering uses no other randomness."""

    attributes: dict[str, bool]
    identity: Identity
    # pose: face centre in image pixels, scale, rotation in degrees (counter-clockwise)
    cx: float
    cy: float
    scale: float
    angle: float
    # mouth geometry, all drawn whatever the labels so Smiling can be toggled on the same face
    mouth_dy: float
    smile_lift: float  # closed smile: corners this many px above the centre of the arc
    neutral_lift: float  # neutral: -4 (corners down) .. 1.5
    open_depth: float  # open smile: depth of the lower lip below the corners
    open_top: float  # open smile: sag of the upper lip
    teeth_height: float
    gap: float  # neutral open mouth: gap between the lips
    lip: tuple[int, int, int]
    # scene
    background: tuple[tuple[int, int, int], tuple[int, int, int]]
    background_angle: float
    clothes: tuple[int, int, int]
    accessory: tuple[int, int, int]  # hat / tie colour
    glasses: tuple[int, int, int]
    makeup: tuple[int, int, int]
    light_min: float  # darkest gain of the lighting gradient (1 = flat)
    light_angle: float
    brightness: float
    blur_radius: float
    jpeg_quality: int
    wrinkle_jitter: tuple[float, ...]  # horizontal offsets of the forehead lines


# ----------------------------------------------------------------------------------------------
# Sampling


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(low + (high - low) * rng.random())


def _colour(base: Sequence[float], jitter: float, rng: np.random.Generator) -> tuple[int, int, int]:
    values = np.clip(np.asarray(base, float) + rng.uniform(-jitter, jitter, 3), 0, 255)
    return (int(values[0]), int(values[1]), int(values[2]))


def sample_identity(rng: np.random.Generator, label: int = 1) -> Identity:
    """Draw one person's looks and identity-level labels."""
    u = rng.random
    male = u() < 0.42
    young = u() < (0.72 if male else 0.82)
    pale = u() < 0.08
    if pale:
        tone = _PALE_TONES[0] + (_PALE_TONES[1] - _PALE_TONES[0]) * u()
    else:
        pos = u() * (len(_SKIN_TONES) - 1)
        k = min(int(pos), len(_SKIN_TONES) - 2)
        tone = _SKIN_TONES[k] + (_SKIN_TONES[k + 1] - _SKIN_TONES[k]) * (pos - k)
    skin = _colour(tone, 4, rng)

    hair_name: str | None = "Gray_Hair"
    if young or u() >= 0.45:
        r, blond = u(), (0.1 if male else 0.24)
        cuts = (
            ("Black_Hair", 0.3),
            ("Brown_Hair", 0.57),
            ("Blond_Hair", 0.57 + blond),
            ("Gray_Hair", 0.58 + blond),
        )
        hair_name = next((name for name, cut in cuts if r < cut), None)  # None: unlabelled auburn
    base, jitter = _HAIR[hair_name]
    hair = _colour(base, jitter, rng)

    bald = male and u() < (0.07 if young else 0.25)
    receding = male and not bald and u() < (0.06 if young else 0.3)
    long_hair = not bald and u() < (0.06 if male else 0.86)
    r = u()
    wavy = not bald and r < (0.18 if male else 0.4)
    straight = not bald and not wavy and r < (0.4 if male else 0.72)
    chubby = u() < 0.08
    oval = u() < 0.28
    full_beard = male and u() < 0.15
    goatee = male and not full_beard and u() < 0.12
    mustache = male and (full_beard and u() < 0.7 or not full_beard and u() < 0.08)
    attributes = {
        "Male": male,
        "Young": young,
        "Pale_Skin": pale,
        "Black_Hair": hair_name == "Black_Hair",
        "Blond_Hair": hair_name == "Blond_Hair",
        "Brown_Hair": hair_name == "Brown_Hair",
        "Gray_Hair": hair_name == "Gray_Hair",
        "Bald": bald,
        "Receding_Hairline": receding,
        "Wavy_Hair": wavy,
        "Straight_Hair": straight,
        "Chubby": chubby,
        "Double_Chin": u() < (0.6 if chubby else 0.03),
        "Oval_Face": oval,
        "Narrow_Eyes": u() < 0.12,
        "Bushy_Eyebrows": u() < (0.25 if male else 0.08),
        "Arched_Eyebrows": u() < (0.08 if male else 0.45),
        "Big_Nose": u() < (0.35 if male else 0.15),
        "Pointy_Nose": u() < 0.28,
        "Big_Lips": u() < 0.24,
        "Goatee": goatee,
        "Mustache": mustache,
        "No_Beard": not (full_beard or goatee),
        "5_o_Clock_Shadow": male and not full_beard and u() < 0.3,
        "Sideburns": male and not bald and u() < 0.18,
        "Attractive": u() < (0.35 if male or not young else 0.65),
        "Bags_Under_Eyes": u() < (0.12 if young else 0.55),
        "High_Cheekbones": u() < 0.45,
        "Rosy_Cheeks": u() < (0.02 if male else 0.12),
    }
    return Identity(
        label=label,
        attributes=attributes,
        skin=skin,
        hair=hair,
        eye=_EYE_COLOURS[int(u() * len(_EYE_COLOURS))],
        hair_volume=_uniform(rng, 2, 6) if male else _uniform(rng, 6, 13),
        face_rx=_uniform(rng, 47, 51) + (3 if male else 0) + (6 if chubby else 0) - (3 if oval else 0),
        face_ry_up=_uniform(rng, 64, 70),
        face_ry_down=_uniform(rng, 61, 67) + (4 if oval else 0),
        jaw_power=_uniform(rng, 2.6, 3.4) if male else _uniform(rng, 1.8, 2.3),
        eye_dx=_uniform(rng, 18.5, 20.5),
        eye_open=_uniform(rng, 2.2, 2.8) if attributes["Narrow_Eyes"] else _uniform(rng, 3.8, 4.8),
        brow_width=_uniform(rng, 5, 6) if attributes["Bushy_Eyebrows"] else _uniform(rng, 2.5, 3.5),
        brow_arch=_uniform(rng, 4, 6) if attributes["Arched_Eyebrows"] else _uniform(rng, 0, 1.5),
        nose_width=_uniform(rng, 7, 9) if attributes["Big_Nose"] else _uniform(rng, 4.5, 6),
        mouth_hw=_uniform(rng, 18.5, 23),
        lip_width=_uniform(rng, 5.2, 6.2) if attributes["Big_Lips"] else _uniform(rng, 3.8, 4.8),
        long_hair=long_hair,
        bangs_prone=not bald and u() < (0.12 if male else 0.3),
        glasses_prone=u() < 0.15,
    )


def sample_face(rng: np.random.Generator, identity: Identity) -> FaceParams:
    """Draw one image of ``identity``: expression, accessories, pose, scene and the remaining labels."""
    u = rng.random
    # Smiling is the first draw and nothing else depends on it.
    smiling = u() < 0.5
    mouth_open = u() < 0.48
    ida = identity.attributes
    male = ida["Male"]
    lipstick = not male and u() < 0.8
    makeup = not male and u() < 0.6
    attributes = {name: False for name in CELEBA_ATTRIBUTES}
    attributes.update(ida)
    attributes.update(
        Smiling=smiling,
        Mouth_Slightly_Open=mouth_open,
        Bangs=identity.bangs_prone and u() < 0.85,
        Eyeglasses=u() < (0.8 if identity.glasses_prone else 0.03),
        Wearing_Hat=u() < 0.1,
        Wearing_Lipstick=lipstick,
        Heavy_Makeup=makeup,
        Wearing_Earrings=u() < (0.02 if male else 0.35),
        Wearing_Necklace=u() < (0.01 if male else 0.2),
        Wearing_Necktie=u() < (0.18 if male else 0.01),
        Blurry=u() < 0.05,
    )
    if attributes["Blurry"]:
        blur = _uniform(rng, 1.6, 2.4)
    else:
        blur = _uniform(rng, 0.4, 0.8) if u() < 0.06 else 0.0
    if lipstick:
        lip = _colour((185, 35, 55), 20, rng)
    else:
        lip = _colour(np.asarray(identity.skin) * 0.55 + (75, 8, 18), 6, rng)
    bg1 = _colour((u() * 255, u() * 255, u() * 255), 0, rng)
    bg2 = _colour(np.asarray(bg1) * 0.5 + rng.uniform(0, 128, 3), 0, rng)
    return FaceParams(
        attributes=attributes,
        identity=identity,
        cx=89.0 + _uniform(rng, -5, 5),
        cy=125.0 + _uniform(rng, -5, 5),
        scale=_uniform(rng, 0.93, 1.07),
        angle=_uniform(rng, -5, 5),
        mouth_dy=_uniform(rng, -2, 2),
        smile_lift=_uniform(rng, 10, 16),
        neutral_lift=_uniform(rng, -4, 1.5),
        open_depth=_uniform(rng, 14, 20),
        open_top=_uniform(rng, 2, 5),
        teeth_height=_uniform(rng, 4.5, 7),
        gap=_uniform(rng, 7, 10),
        lip=lip,
        background=(bg1, bg2),
        background_angle=_uniform(rng, 0, 2 * math.pi),
        clothes=_colour((u() * 255, u() * 255, u() * 255), 0, rng),
        accessory=_colour((u() * 255, u() * 255, u() * 255), 0, rng),
        glasses=_colour((40, 40, 40), 40, rng) if u() < 0.7 else _colour((150, 110, 60), 60, rng),
        makeup=_colour((120, 70, 130), 40, rng),
        light_min=_uniform(rng, 0.6, 1.0),
        light_angle=_uniform(rng, 0, 2 * math.pi),
        brightness=_uniform(rng, 0.85, 1.15),
        blur_radius=blur,
        jpeg_quality=int(rng.integers(60, 96)),
        wrinkle_jitter=tuple(float(v) for v in rng.uniform(-1, 1, 6)),
    )


# ----------------------------------------------------------------------------------------------
# Rendering


def _gradient(size: tuple[int, int], c1: Sequence[int], c2: Sequence[int], angle: float) -> Image.Image:
    """A linear gradient from ``c1`` to ``c2`` along ``angle`` (RGB, or L for 1-tuples), upscaled from 8x8."""
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    t = (_GRID_X * cos_a + _GRID_Y * sin_a) / (abs(cos_a) + abs(sin_a)) / 2 + 0.5
    small = np.asarray(c1, float) + (np.asarray(c2, float) - np.asarray(c1, float)) * t[..., None]
    small = np.clip(small.round(), 0, 255).astype(np.uint8)
    if small.shape[-1] == 1:
        return Image.fromarray(small[..., 0], "L").resize(size, Image.BILINEAR)
    return Image.fromarray(small, "RGB").resize(size, Image.BILINEAR)


def _shade(rgb: Sequence[int], factor: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, c * factor))) for c in rgb)  # type: ignore[return-value]


def _mouth(p: FaceParams) -> tuple[str, np.ndarray, np.ndarray | None]:
    """The mouth in face units: (kind, upper or only curve, lower curve or None), corner to corner."""
    hw = p.identity.mouth_hw * (SMILE_WIDENING if p.attributes["Smiling"] else 1.0)
    my = _MOUTH_Y + p.mouth_dy
    x = _T * hw
    bump = 1.0 - _T**2  # 0 at the corners, 1 in the middle
    if p.attributes["Smiling"]:
        # an upturned crescent showing the teeth: wide open, or a closed-lip grin
        depth = p.open_depth if p.attributes["Mouth_Slightly_Open"] else 0.8 * p.open_depth
        top = my - depth / 2
        upper = top + p.open_top * bump
        lower = top + depth * bump
        return "open_smile", np.stack([x, upper], 1), np.stack([x, lower], 1)
    centre = my + p.neutral_lift * (0.5 - _T**2)
    if p.attributes["Mouth_Slightly_Open"]:
        half = p.gap / 2 * bump
        return "open", np.stack([x, centre - half], 1), np.stack([x, centre + half], 1)
    return "closed", np.stack([x, centre], 1), None


class _Painter:
    """Draws shapes given in face units (origin at the face centre), scaled, rotated and placed."""

    def __init__(self, image: Image.Image, cx: float, cy: float, scale: float, angle: float) -> None:
        self.draw = ImageDraw.Draw(image)
        self.blend = ImageDraw.Draw(image, "RGBA")  # for translucent fills only (slower)
        theta = math.radians(angle)  # counter-clockwise on screen, like PIL's Image.rotate
        c, s = math.cos(theta) * scale, math.sin(theta) * scale
        self.matrix = np.array([[c, -s], [s, c]])
        self.offset = np.array([cx, cy])
        self.scale = scale

    def place(self, xy: np.ndarray) -> np.ndarray:
        """Face units to image pixels."""
        return np.asarray(xy, float) @ self.matrix + self.offset

    def _flat(self, xy: np.ndarray) -> list[float]:
        return self.place(xy).ravel().tolist()

    def width(self, width: float) -> int:
        return max(1, round(width * self.scale))

    def polygon(self, xy: np.ndarray, fill: Sequence[int]) -> None:
        (self.blend if len(fill) == 4 else self.draw).polygon(self._flat(xy), fill=tuple(fill))

    def line(self, xy: np.ndarray, fill: Sequence[int], width: float, round_ends: bool = False) -> None:
        flat = self._flat(xy)
        w = self.width(width)
        self.draw.line(flat, fill=tuple(fill), width=w, joint="curve")
        if round_ends and w > 2:
            for x, y in ((flat[0], flat[1]), (flat[-2], flat[-1])):
                self.draw.ellipse((x - w / 2, y - w / 2, x + w / 2, y + w / 2), fill=tuple(fill))

    def ellipse(self, x0: float, y0: float, x1: float, y1: float, fill: Sequence[int]) -> None:
        self.polygon(_ellipse_points(x0, y0, x1, y1, _CIRCLE), fill)

    def arc(self, x0: float, y0: float, x1: float, y1: float, start: float, end: float,
            fill: Sequence[int], width: float) -> None:  # fmt: skip
        """Part of an ellipse outline; angles in degrees, clockwise from 3 o'clock (as in PIL)."""
        self.line(_ellipse_points(x0, y0, x1, y1, _unit_arc(start, end)), fill, width)

    def rectangle(self, x0: float, y0: float, x1: float, y1: float, fill: Sequence[int]) -> None:
        self.polygon(np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]), fill)

    def rounded_rectangle(self, x0: float, y0: float, x1: float, y1: float, fill: Sequence[int] | None,
                          outline: Sequence[int] | None = None, width: float = 1) -> None:  # fmt: skip
        pts = _ellipse_points(x0, y0, x1, y1, _SQUIRCLE)
        if fill is not None:
            self.polygon(pts, fill)
        if outline is not None:
            self.line(np.concatenate([pts, pts[:1]]), outline, width)


@functools.lru_cache(maxsize=64)
def _unit_arc(start: float, end: float) -> np.ndarray:
    angles = np.radians(np.linspace(start, end, 9))
    return np.stack([np.cos(angles), np.sin(angles)], 1)


def _ellipse_points(x0: float, y0: float, x1: float, y1: float, unit: np.ndarray) -> np.ndarray:
    return unit * ((x1 - x0) / 2, (y1 - y0) / 2) + ((x0 + x1) / 2, (y0 + y1) / 2)


def render_face(params: FaceParams) -> RenderedFace:
    """Draw the face described by ``params`` (deterministic; no randomness)."""
    p, ident, a = params, params.identity, params.attributes
    image = _gradient((WIDTH, HEIGHT), p.background[0], p.background[1], p.background_angle)
    pen = _Painter(image, p.cx, p.cy, p.scale, p.angle)
    skin, hair = ident.skin, ident.hair
    rx, ry_up, ry_down = ident.face_rx, ident.face_ry_up, ident.face_ry_down
    vol = ident.hair_volume
    bald = a["Bald"]

    # face outline: an ellipse on top, a superellipse (squarer for men) below
    power = np.where(_SIN > 0, 2.0 / ident.jaw_power, 1.0)
    outline = np.stack(
        [rx * np.sign(_COS) * np.abs(_COS) ** power, np.where(_SIN > 0, ry_down, ry_up) * _SIN], 1
    )

    # hair behind the head
    if ident.long_hair:
        ys = np.linspace(-10, 100, 9)
        wave = 4.0 * np.sin(ys / 9.0) if a["Wavy_Hair"] else np.zeros_like(ys)
        side = rx + vol + ys * 0.06 + wave
        pen.polygon(np.concatenate([np.stack([-side, ys], 1), np.stack([side, ys], 1)[::-1]]), hair)
    # neck, clothes and their accessories
    dark_skin = _shade(skin, 0.85)
    pen.rectangle(-20, 30, 20, 95, dark_skin)
    pen.polygon(np.array([(-28, 80), (28, 80), (95, 112), (100, 170), (-100, 170), (-95, 112)]), p.clothes)
    if a["Wearing_Necktie"]:
        pen.polygon(np.array([(-18, 80), (0, 96), (18, 80), (0, 88)]), (240, 240, 240))
        pen.polygon(np.array([(-5, 90), (5, 90), (8, 140), (0, 150), (-8, 140)]), p.accessory)
    if a["Wearing_Necklace"]:
        pen.arc(-24, 60, 24, 92, 20, 160, (230, 200, 90), 2.5)
    # ears and earrings
    for side in (-1, 1):
        pen.ellipse(side * (rx - 1) - 6, -14, side * (rx - 1) + 6, 6, dark_skin)
        if a["Wearing_Earrings"]:
            pen.ellipse(side * rx - 4, 5, side * rx + 4, 13, (235, 205, 90))
    # hair cap (short hair and the top of long hair)
    if not bald:
        top = -(ry_up + vol)
        pen.ellipse(-rx - vol * 0.6, top, rx + vol * 0.6, -top * 0.25, hair)
    elif not a["Wearing_Hat"]:  # a fringe of hair on the sides of a bald head
        pen.ellipse(-rx - 3, -40, rx + 3, 10, hair)
    # the face itself
    pen.polygon(outline, skin)
    if a["Double_Chin"]:
        pen.arc(-22, ry_down - 14, 22, ry_down + 4, 20, 160, _shade(skin, 0.75), 2)
    line = _shade(skin, 0.72)
    if not a["Young"]:  # wrinkles: forehead lines, crow's feet, folds under the eyes
        ws = p.wrinkle_jitter
        for i, yy in enumerate((-44, -38, -32)):
            pen.arc(-22 + 3 * ws[i], yy, 22 + 3 * ws[i], yy + 10, 200, 340, line, 1.6)
        for side in (-1, 1):
            ex = side * (ident.eye_dx + 9)
            for dy in (-3, 0, 3):
                pen.line(np.array([(ex, _EYE_Y + dy), (ex + side * 6, _EYE_Y + dy * 1.6)]), line, 1.2)
            pen.arc(
                side * ident.eye_dx - 9, _EYE_Y + 2, side * ident.eye_dx + 9, _EYE_Y + 10, 20, 160, line, 1.4
            )
    # top of the hair, over the forehead (outline points run left to right across the top)
    if not bald:
        hairline = -0.82 * ry_up if a["Receding_Hairline"] else -0.62 * ry_up
        cap = outline[outline[:, 1] < hairline] * (1.03, 1.0)
        if len(cap) >= 3:
            pen.polygon(cap, hair)
        if a["Bangs"]:
            bang_y = -31.0
            fringe = outline[outline[:, 1] < bang_y] * (1.03, 1.0)
            zig = np.linspace(fringe[-1, 0], fringe[0, 0], 9)
            teeth = np.stack([zig, bang_y + np.where(np.arange(9) % 2 == 0, 0.0, -6.0)], 1)
            pen.polygon(np.concatenate([fringe, teeth]), hair)
    # facial hair
    my = _MOUTH_Y + p.mouth_dy
    beard = _shade(hair, 0.85)
    if a["5_o_Clock_Shadow"]:
        pen.polygon(outline[outline[:, 1] > 14], (40, 30, 25, 60))
    if not a["No_Beard"] and not a["Goatee"]:  # full beard
        pen.polygon(outline[outline[:, 1] > 10] * (1.02, 1.04), beard)
    if a["Goatee"]:
        pen.ellipse(-13, my + 11, 13, ry_down + 4, beard)
    if a["Mustache"]:
        hw = ident.mouth_hw
        pen.polygon(np.array([(-hw - 3, my - 5), (-hw + 3, my - 13), (0, my - 15), (hw - 3, my - 13),
                              (hw + 3, my - 5), (0, my - 10)]), beard)  # fmt: skip
    if a["Sideburns"]:
        for side in (-1, 1):
            pen.rectangle(side * rx - 4 * (side + 1), -30, side * rx - 4 * (side - 1), 4, hair)
    # cheeks and make-up
    if a["Rosy_Cheeks"]:
        for side in (-1, 1):
            pen.ellipse(side * 28 - 10, 2, side * 28 + 10, 16, (235, 70, 90, 70))
    if a["Heavy_Makeup"]:
        for side in (-1, 1):
            ex = side * ident.eye_dx
            pen.ellipse(ex - 9, _EYE_Y - 9, ex + 9, _EYE_Y + 2, (*p.makeup, 120))
            pen.ellipse(side * 30 - 9, 4, side * 30 + 9, 14, (230, 110, 120, 50))
    # eyes and eyebrows
    brow = _shade(hair, 0.7) if not a["Gray_Hair"] else (120, 120, 120)
    eyes = []
    for side in (-1, 1):
        ex, ey, eo = side * ident.eye_dx, _EYE_Y, ident.eye_open
        eyes.append((ex, ey))
        if a["Bags_Under_Eyes"]:
            pen.arc(ex - 8, ey, ex + 8, ey + eo + 7, 20, 160, _shade(skin, 0.68), 2)
        pen.ellipse(ex - 7.5, ey - eo, ex + 7.5, ey + eo, (245, 245, 240))
        ir = min(3.8, eo + 0.6)
        pen.ellipse(ex - ir, ey - ir, ex + ir, ey + ir, ident.eye)
        pen.ellipse(ex - 1.6, ey - 1.6, ex + 1.6, ey + 1.6, (10, 10, 10))
        pen.arc(ex - 7.5, ey - eo, ex + 7.5, ey + eo, 190, 350, (30, 25, 25), 1.6)
        by, arch = ey - 10, ident.brow_arch
        pen.line(
            np.array([(ex - 10, by + 1), (ex + side * 2, by - arch), (ex + 10, by + 1)]),
            brow,
            ident.brow_width,
        )
    # nose
    nw = ident.nose_width
    pen.line(np.array([(-2.0, -8.0), (-3.5, 4.0)]), _shade(skin, 0.82), 2)
    for side in (-1, 1):
        pen.ellipse(side * nw - 2, _NOSE_Y - 1, side * nw + 2, _NOSE_Y + 2, _shade(skin, 0.55))
    tip = 2 if a["Pointy_Nose"] else 0
    pen.arc(-nw - 2, _NOSE_Y - 6, nw + 2, _NOSE_Y + 3 + tip, 30, 150, _shade(skin, 0.7), 1.6)
    # mouth
    kind, upper, lower = _mouth(p)
    if lower is None:
        pen.line(upper, p.lip, ident.lip_width, round_ends=True)
    else:
        shape = np.concatenate([upper, lower[::-1]])
        pen.polygon(shape, (70, 22, 30))
        if kind == "open_smile":
            inner = np.minimum(
                upper[:, 1] + np.maximum(p.teeth_height, 0.6 * (lower[:, 1] - upper[:, 1])), lower[:, 1] - 1.0
            )
            sel = slice(2, -2)
            pen.polygon(
                np.concatenate([upper[sel], np.stack([upper[sel, 0], inner[sel]], 1)[::-1]]), (246, 244, 236)
            )
        pen.line(np.concatenate([shape, shape[:1]]), p.lip, ident.lip_width)
    corners = [tuple(upper[0]), tuple(upper[-1])]
    # glasses
    if a["Eyeglasses"]:
        for ex, ey in eyes:
            pen.rounded_rectangle(ex - 12, ey - 8, ex + 12, ey + 8, (*p.glasses, 35), p.glasses, 2.6)
        pen.line(
            np.array([(-ident.eye_dx + 12, _EYE_Y - 2), (ident.eye_dx - 12, _EYE_Y - 2)]), p.glasses, 2.6
        )
        for side in (-1, 1):
            pen.line(
                np.array([(side * (ident.eye_dx + 12), _EYE_Y - 4), (side * rx, _EYE_Y - 6)]), p.glasses, 2.6
            )
    # hat
    if a["Wearing_Hat"]:
        pen.rounded_rectangle(-rx - 6, -ry_up - 40, rx + 6, -0.55 * ry_up, p.accessory)
        pen.rectangle(-rx - 5, -0.82 * ry_up, rx + 5, -0.72 * ry_up, _shade(p.accessory, 0.6))
        pen.ellipse(-rx - 20, -0.78 * ry_up, rx + 20, -0.62 * ry_up, _shade(p.accessory, 0.85))

    # lighting, brightness, blur
    dim = min(p.brightness, 1.0)
    if p.light_min * dim < 1.0:  # darken along a gradient: blend with black through an L mask
        mask = _gradient((WIDTH, HEIGHT), (255 * dim,), (255 * dim * p.light_min,), p.light_angle)
        image = Image.composite(image, _BLACK, mask)
    if p.brightness > 1.0:
        image = Image.blend(_BLACK, image, p.brightness)  # alpha > 1 scales up, clipped at 255
    if p.blur_radius > 0:
        image = image.filter(ImageFilter.BoxBlur(p.blur_radius))

    marks = pen.place(np.array([*eyes, (0.0, _NOSE_Y), *corners]))
    landmarks = tuple(int(v) for v in np.rint(marks).astype(int).ravel())
    face = pen.place(outline)
    x0, y0 = np.clip(np.floor(face.min(0)), 0, (WIDTH - 1, HEIGHT - 1)).astype(int)
    x1, y1 = np.clip(np.ceil(face.max(0)), 0, (WIDTH - 1, HEIGHT - 1)).astype(int)
    return RenderedFace(image, landmarks, (int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)))


# ----------------------------------------------------------------------------------------------
# Dataset files


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    """The JPEG file bytes of ``image`` at ``quality`` (deterministic for a given Pillow/libjpeg)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _split_sizes(num_images: int, split_fractions: Sequence[float]) -> tuple[int, int, int]:
    fractions = tuple(float(f) for f in split_fractions)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"split_fractions must be three non-negative numbers summing to 1, got {split_fractions}"
        )
    n_train = round(num_images * fractions[0])
    n_valid = min(round(num_images * fractions[1]), num_images - n_train)
    return n_train, n_valid, num_images - n_train - n_valid


def is_complete(root: str | Path) -> bool:
    """Whether ``root`` holds a finished CelebA-layout dataset: all five annotation files and all images."""
    root = Path(root)
    if not (root / IMAGE_DIR).is_dir() or not all((root / f).is_file() for f in ANNOTATION_FILES):
        return False
    try:
        counts = []
        for name in (ATTR_FILE, BBOX_FILE, LANDMARKS_FILE):
            with open(root / name) as f:
                counts.append(int(f.readline().split()[0]))
        for name in (PARTITION_FILE, IDENTITY_FILE):
            with open(root / name) as f:
                counts.append(sum(1 for row in f if row.strip()))
    except (OSError, ValueError, IndexError):
        return False
    n = counts[0]
    if n <= 0 or any(c != n for c in counts):
        return False
    present = set(os.listdir(root / IMAGE_DIR))
    return all(f"{i:06d}.jpg" in present for i in range(1, n + 1))


def _write_dataset(
    out: Path, num_images: int, seed: int, split_fractions: Sequence[float], progress: bool
) -> None:
    sizes = _split_sizes(num_images, split_fractions)
    image_dir = out / IMAGE_DIR
    image_dir.mkdir(parents=True)
    # Identities: about 4 images each, disjoint between the splits like the official partition.
    rng = np.random.default_rng([seed, 0])
    n_ids = [math.ceil(n / 4) for n in sizes]
    labels = rng.choice(max(10177, 2 * sum(n_ids)), sum(n_ids), replace=False) + 1
    identity_index = []
    start = 0
    for n, k in zip(sizes, n_ids):
        identity_index.extend((start + rng.integers(0, k, n)).tolist() if n else [])
        start += k
    identities: dict[int, Identity] = {}

    attr_rows, part_rows, id_rows, bbox_rows, mark_rows = [], [], [], [], []
    splits = [0] * sizes[0] + [1] * sizes[1] + [2] * sizes[2]
    for i in tqdm(
        range(num_images), desc="synthetic CelebA", unit="img", disable=not progress, mininterval=1
    ):
        k = identity_index[i]
        if k not in identities:
            identities[k] = sample_identity(np.random.default_rng([seed, 1, k]), int(labels[k]))
        params = sample_face(np.random.default_rng([seed, 2, i]), identities[k])
        face = render_face(params)
        name = f"{i + 1:06d}.jpg"
        (image_dir / name).write_bytes(encode_jpeg(face.image, params.jpeg_quality))
        attr_rows.append(
            name + "".join(f" {1 if params.attributes[a] else -1:2d}" for a in CELEBA_ATTRIBUTES)
        )
        part_rows.append(f"{name} {splits[i]}")
        id_rows.append(f"{name} {identities[k].label}")
        x, y, bw, bh = face.bbox
        bbox_rows.append(f"{name} {x:>5d} {y:>3d} {bw:>3d} {bh:>3d}")
        mark_rows.append(name + "".join(f" {v:>4d}" for v in face.landmarks))

    def write(fname: str, header: list[str], rows: list[str]) -> None:
        with open(out / fname, "w", newline="\n") as f:
            f.write("\n".join([*header, *rows]) + "\n")

    (out / MARKER_FILE).write_text(
        json.dumps({"generator": "smile synthetic", "images": num_images, "seed": seed}) + "\n"
    )
    write(PARTITION_FILE, [], part_rows)
    write(IDENTITY_FILE, [], id_rows)
    write(BBOX_FILE, [str(num_images), "image_id x_1 y_1 width height"], bbox_rows)
    write(LANDMARKS_FILE, [str(num_images), " ".join(LANDMARK_NAMES)], mark_rows)
    header = " ".join(CELEBA_ATTRIBUTES) + " "  # the official file has a trailing space here
    write(ATTR_FILE, [str(num_images), header], attr_rows)  # written last: its count line marks completion


def generate_dataset(
    root: str | Path,
    num_images: int,
    seed: int = 0,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    *,
    progress: bool | None = None,
) -> Path:
    """Write a synthetic CelebA of ``num_images`` faces to ``root`` (official layout) and return it.

    Built in a sibling ``ROOT.partial-<pid>`` folder and renamed into place at the end. A complete
    dataset already at ``root`` is kept as is; a non-empty, incomplete ``root`` raises
    :class:`FileExistsError`. ``progress`` (default: when stderr is a terminal) shows a tqdm bar.
    """
    root = Path(root)
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    _split_sizes(num_images, split_fractions)
    if root.exists():
        if is_complete(root):
            with open(root / ATTR_FILE) as f:
                found = int(f.readline().split()[0])
            if found != num_images:
                warnings.warn(
                    f"{root} already holds a complete dataset of {found} images (asked for {num_images}); "
                    "keeping it. Delete it to regenerate.",
                    stacklevel=2,
                )
            return root
        if not root.is_dir() or any(root.iterdir()):
            raise FileExistsError(
                f"{root} exists but is not a complete CelebA-layout dataset; refusing to overwrite it. "
                "Delete it or choose another folder."
            )
    if progress is None:
        progress = sys.stderr.isatty()
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = root.resolve().with_name(f"{root.resolve().name}.partial-{os.getpid()}")
    if partial.exists():
        shutil.rmtree(partial)
    try:
        _write_dataset(partial, num_images, seed, split_fractions, progress)
        try:
            if root.is_dir():
                root.rmdir()  # empty (checked above)
            os.rename(partial, root)
        except OSError:
            if not is_complete(root):
                raise
            # another process finished the same folder first: keep theirs
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return root


def is_synthetic(root: str | Path) -> bool:
    """Whether ``root`` holds a dataset this generator wrote (its faces are drawn, not photographed)."""
    return (Path(root) / MARKER_FILE).is_file()
