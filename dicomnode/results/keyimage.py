"""The key image of a finding: its centre slice, windowed, the finding's box drawn, and a caption that says what
made it and that it is not for diagnosis. One renderer for the worklist thumbnail (and the Secondary Capture key
image a PACS will show)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.pixels import apply_modality_lut

NOT_FOR_DIAGNOSIS = "AI output - not for diagnostic use"
_BOX = (255, 214, 0)  # yellow: seen on grey anatomy, and not the red of a STAT order


@dataclass(frozen=True)
class KeyImage:
    """What to draw: the box (row0, col0, row1, col1; upper bounds exclusive) and the caption lines."""

    box: tuple[int, int, int, int]
    caption: tuple[str, ...]


def grey_slice(ds: pydicom.Dataset) -> np.ndarray:
    """The slice as 8-bit grey, dense bright: the header's window when it has one, else the 0.5-99.5 percentiles."""
    pixels = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    window = header_window(ds)
    low, high = window if window else tuple(float(v) for v in np.percentile(pixels, (0.5, 99.5)))
    grey = np.clip((pixels - low) / max(high - low, 1e-6), 0, 1) * 255
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        grey = 255 - grey
    return grey.astype(np.uint8)


def caption(label: str, probability: float, model: str, model_version: str) -> tuple[str, ...]:
    return (f"{label} {probability:.0%}", f"{model} {model_version}")


def render(grey: np.ndarray, key: KeyImage, side: int | None = None) -> Image.Image:
    """RGB image of the slice with the box and the caption band, scaled so that its longer side is `side`; the
    caption grows with the image, so it stays readable when a PACS shrinks it to a thumbnail."""
    image = Image.fromarray(grey).convert("RGB")
    scale = side / max(image.size) if side else 1.0
    if scale != 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    draw = ImageDraw.Draw(image)
    r0, c0, r1, c1 = (round(v * scale) for v in key.box)
    stroke = max(2, image.width // 256)
    margin = 1 + stroke  # the outline sits just outside the region, never over it
    draw.rectangle((c0 - margin, r0 - margin, c1 + margin, r1 + margin), outline=_BOX, width=stroke)
    font_px = max(11, image.width // 40)
    font = ImageFont.load_default(size=font_px)
    lines = [*key.caption, NOT_FOR_DIAGNOSIS]
    line_height = font_px + 4
    band = line_height * len(lines) + 6
    canvas = Image.new("RGB", (image.width, image.height + band), "black")
    canvas.paste(image, (0, 0))
    text = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        text.text((4, image.height + 3 + i * line_height), line, fill="white", font=font)
    return canvas


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def header_window(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """The first Window Center/Width the header suggests (PS3.3 C.11.2), as (low, high)."""
    try:
        centre, width = (float(_first(ds.get(k))) for k in ("WindowCenter", "WindowWidth"))
    except (TypeError, ValueError):
        return None
    return (centre - width / 2, centre + width / 2) if width > 0 else None


def _first(value: object) -> object:
    return value[0] if isinstance(value, pydicom.multival.MultiValue) else value
