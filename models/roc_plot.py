"""A ROC curve as a PNG, drawn with Pillow (already installed with highdicom): no plotting stack needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE, MARGIN = 480, 60


def write_roc_png(
    path: Path, fpr: np.ndarray, tpr: np.ndarray, title: str, operating_point: tuple[float, float]
) -> None:
    """Axes 0..1, the chance diagonal, the curve, and the operating point at the model's threshold."""
    image = Image.new("RGB", (SIZE, SIZE), "white")
    draw = ImageDraw.Draw(image)
    side = SIZE - 2 * MARGIN

    def at(x: float, y: float) -> tuple[float, float]:
        return MARGIN + x * side, SIZE - MARGIN - y * side

    draw.rectangle([at(0, 1), at(1, 0)], outline="black")
    for tick in np.linspace(0, 1, 6):
        draw.text((at(tick, 0)[0] - 8, SIZE - MARGIN + 6), f"{tick:.1f}", fill="black")
        draw.text((MARGIN - 28, at(0, tick)[1] - 6), f"{tick:.1f}", fill="black")
    draw.line([at(0, 0), at(1, 1)], fill=(170, 170, 170), width=1)
    draw.line([at(x, y) for x, y in zip(fpr, tpr, strict=True)], fill=(20, 80, 200), width=3)
    ox, oy = at(*operating_point)
    draw.ellipse([ox - 5, oy - 5, ox + 5, oy + 5], outline=(200, 30, 30), width=2)
    draw.text((MARGIN, 18), title, fill="black")
    draw.text((SIZE // 2 - 70, SIZE - 24), "1 - specificity (FPR)", fill="black")
    draw.text((6, MARGIN - 20), "sensitivity (TPR)", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
