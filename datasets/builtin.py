"""The built-in procedural set: pixel characters with Sprites' factor structure (four static
factors with six visibly different values, the same nine actions, 8 frames of 64x64 RGB),
drawn deterministically in seconds with nothing from outside.
"""
import numpy as np

from datasets.characters import ACTIONS, DIRECTIONS, FRAMES, LAYERS, SIZE, build_split

NAME = "builtin"

SKIN = [(255, 224, 189), (205, 150, 95), (120, 70, 40), (110, 190, 100), (120, 150, 230), (235, 120, 200)]
PANTS = [(30, 40, 150), (150, 30, 30), (40, 120, 40), (210, 190, 60), (90, 90, 90), (250, 250, 250)]
TOPS = [(220, 60, 60), (60, 170, 220), (240, 160, 30), (130, 60, 170), (30, 120, 90), (245, 245, 160)]
HAIR = [(30, 20, 10), (250, 220, 90), (200, 80, 20), (230, 230, 230), (60, 200, 60), (180, 40, 180)]
EXTRAS = (60, 40, 30)  # shoes


class _Canvas:
    """A 64 x 64 RGBA frame with a few primitives (disc, thick line, box)."""

    yy, xx = np.mgrid[0:SIZE, 0:SIZE]

    def __init__(self):
        self.rgba = np.zeros((SIZE, SIZE, 4), np.uint8)

    def paint(self, mask, color):
        self.rgba[mask] = (*color, 255)

    def disc(self, cx, cy, r, color):
        self.paint((self.xx - cx) ** 2 + (self.yy - cy) ** 2 <= r * r, color)

    def box(self, x0, y0, x1, y1, color):
        self.paint((self.xx >= x0) & (self.xx <= x1) & (self.yy >= y0) & (self.yy <= y1), color)

    def line(self, x0, y0, x1, y1, width, color):
        # distance from each pixel to the segment
        px, py, dx, dy = self.xx - x0, self.yy - y0, x1 - x0, y1 - y0
        t = np.clip((px * dx + py * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        self.paint((px - t * dx) ** 2 + (py - t * dy) ** 2 <= (width / 2) ** 2, color)


def _pose(action, t):
    """Limb angles (radians from straight down) and bob for frame t of an action."""
    phase = 2 * np.pi * t / FRAMES
    if action == "walk":
        swing = 0.55 * np.sin(phase)
        return {"leg": swing, "arm_l": -swing, "arm_r": swing, "bob": int(round(abs(np.sin(phase)))), "glow": 0,
                "sword": False}
    if action == "spellcast":
        raise_ = (0.0, 0.5, 1.2, 2.0, 2.6, 2.8, 2.6, 1.4)[t]
        return {"leg": 0.0, "arm_l": raise_, "arm_r": raise_, "bob": 0, "glow": 1 + t // 3 if t >= 3 else 0,
                "sword": False}
    sweep = (3.0, 2.6, 2.0, 1.2, 0.5, 0.1, 0.5, 3.0)[t]  # slash: the sword arm sweeps down
    return {"leg": 0.25 * np.sin(phase), "arm_l": 0.2, "arm_r": sweep, "bob": 0, "glow": 0, "sword": True}


def _draw(layer, variant, action, facing, t):
    """One RGBA frame of one layer of the built-in character (faces left in profile)."""
    c = _Canvas()
    p = _pose(action, t)
    side = facing != "front"
    cx, y0 = 32, 6 + p["bob"]
    hip_y, shoulder_y = y0 + 32, y0 + 17
    half = 4 if side else 7  # torso half-width: narrow in profile

    def end_of(x, y, angle, length):
        # in profile a limb swings forward (to the left); facing front it lifts outwards
        direction = -1 if side else (1 if x > cx else -1)
        return x + direction * np.sin(angle) * length, y + np.cos(angle) * length

    legs = [(cx - 1, p["leg"]), (cx + 1, -p["leg"])] if side else [(cx - 3, 0.5 * p["leg"]), (cx + 3, -0.5 * p["leg"])]
    arms = [(cx, p["arm_l"]), (cx, p["arm_r"])] if side else [(cx - half - 2, p["arm_l"]), (cx + half + 2, p["arm_r"])]
    if layer == "body":  # head, arms, hands, eyes, and what the hands hold
        skin = SKIN[variant]
        c.disc(cx, y0 + 9, 7, skin)
        hands = []
        for x, a in arms:
            hands.append(end_of(x, shoulder_y + 1, a, 13))
            c.line(x, shoulder_y + 1, *hands[-1], 4, skin)
        for x, _ in legs:
            c.box(x - 2, hip_y + 12, x + 2, hip_y + 16, skin)
        for ex in ((cx - 5,) if side else (cx - 4, cx + 3)):
            c.box(ex, y0 + 8, ex + 1, y0 + 9, (0, 0, 0))
        if p["sword"]:
            hx, hy = hands[1]
            c.line(hx, hy, *end_of(arms[1][0], hy, p["arm_r"], 14), 2, (200, 200, 215))
        for hx, hy in hands if p["glow"] else ():
            c.disc(hx, hy, 1 + p["glow"], (255, 240, 120))
    elif layer == "bottomwear":
        for x, a in legs:
            c.line(x, hip_y, *end_of(x, hip_y, a, 15), 5, PANTS[variant])
    elif layer == "topwear":
        c.box(cx - half, shoulder_y, cx + half, hip_y + 1, TOPS[variant])
        for x, a in arms:
            c.line(x, shoulder_y + 1, *end_of(x, shoulder_y + 1, a, 6), 5, TOPS[variant])
    elif layer == "hair":  # colour by variant, and three styles: short, long, top knot
        color = HAIR[variant]
        c.paint(((c.xx - cx) ** 2 + (c.yy - y0 - 9) ** 2 <= 64) & (c.yy <= y0 + 5), color)
        if variant % 3 == 1 and side:
            c.box(cx + 2, y0 + 5, cx + 7, y0 + 16, color)
        elif variant % 3 == 1:
            c.box(cx - 8, y0 + 5, cx - 6, y0 + 16, color)
            c.box(cx + 6, y0 + 5, cx + 8, y0 + 16, color)
        elif variant % 3 == 2:
            c.disc(cx + (2 if side else 0), y0, 3, color)
    else:  # shoes
        for x, a in legs:
            fx, _ = end_of(x, hip_y, a, 15)
            c.box(fx - 3 - (2 if side else 0), hip_y + 14, fx + 3, hip_y + 16, EXTRAS)
    if facing == "right":  # right is the mirror image of left
        c.rgba = c.rgba[:, ::-1].copy()
    return c.rgba


def builtin_layers():
    """The built-in set's layers in compose() form: four factors x six variants, plus shoes."""
    out = []
    for layer in LAYERS:
        n = 1 if layer == "shoes" else 6
        frames = np.empty((n, 9, FRAMES, SIZE, SIZE, 4), np.uint8)
        for v in range(n):
            for a, action in enumerate(ACTIONS):
                for d, facing in enumerate(DIRECTIONS):
                    for t in range(FRAMES):
                        frames[v, 3 * a + d, t] = _draw(layer, v, action, facing, t)
        out.append(frames)
    return out


def load_builtin(chars=None):
    """The built-in procedural set (train, test): Sprites' factor structure, drawn by us.

    chars: use only this many characters (for tests); default all 1296."""
    return build_split(builtin_layers(), "builtin", chars)
