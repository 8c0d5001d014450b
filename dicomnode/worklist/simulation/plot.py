"""The wait-time distributions of each policy as one PNG (Pillow; no plotting library): a box per policy for the
truly critical studies and for routine ones (whiskers p5-p95, the maximum as a tick)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

COLOURS = {"critical": (200, 40, 40), "routine": (40, 90, 200)}
WIDTH, ROW, LEFT, RIGHT, TOP = 1100, 70, 230, 40, 60


def draw(groups: dict[str, dict[str, np.ndarray]], path: Path, title: str) -> None:
    """`groups`: policy -> {"critical": waits, "routine": waits} in minutes."""
    font = ImageFont.load_default(size=16)
    small = ImageFont.load_default(size=13)
    height = TOP + ROW * len(groups) + 60
    image = Image.new("RGB", (WIDTH, height), "white")
    pen = ImageDraw.Draw(image)
    pen.text((LEFT, 15), title, fill="black", font=font)
    highest = max((float(np.max(w)) for g in groups.values() for w in g.values() if len(w)), default=1.0) or 1.0
    scale = (WIDTH - LEFT - RIGHT) / highest

    def x(minutes: float) -> float:
        return LEFT + minutes * scale

    for row, (policy, waits) in enumerate(groups.items()):
        y = TOP + row * ROW
        pen.text((10, y + 18), policy.replace("_", " "), fill="black", font=font)
        for k, (kind, w) in enumerate(waits.items()):
            if not len(w):
                continue
            mid = y + 15 + k * 28
            p5, p25, p50, p75, p95 = np.percentile(w, [5, 25, 50, 75, 95])
            colour = COLOURS.get(kind, (90, 90, 90))
            pen.line([(x(p5), mid), (x(p95), mid)], fill=colour, width=2)
            pen.rectangle([x(p25), mid - 9, max(x(p75), x(p25) + 2), mid + 9], outline=colour, width=2)
            pen.line([(x(p50), mid - 9), (x(p50), mid + 9)], fill=colour, width=3)
            pen.line([(x(float(np.max(w))), mid - 6), (x(float(np.max(w))), mid + 6)], fill=colour, width=2)
            caption = f"{kind}: median {p50:.0f}, max {np.max(w):.0f} min"
            at = min(x(float(np.max(w))) + 8, WIDTH - 4 - pen.textlength(caption, font=small))
            pen.text((at, mid - 8), caption, fill=colour, font=small)
    axis = TOP + ROW * len(groups) + 10
    pen.line([(LEFT, axis), (WIDTH - RIGHT, axis)], fill="black", width=1)
    for tick in np.linspace(0, highest, 6):
        pen.line([(x(tick), axis), (x(tick), axis + 5)], fill="black")
        pen.text((x(tick) - 10, axis + 8), f"{tick:.0f}", fill="black", font=small)
    pen.text((WIDTH - RIGHT - 150, axis + 26), "wait (minutes)", fill="black", font=small)
    image.save(path, format="PNG")
