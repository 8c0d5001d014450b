"""The monitoring figures as one page for a quality meeting: per model version, studies and positive rate per day,
the score histogram, input drift per feature against its threshold, readers' agreement per day, open alerts.
Drawn with Pillow (PNG, or PDF by the file's suffix); no plotting library."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from dicomnode.config.ops import MonitoringConfig
from dicomnode.ops.monitoring.alerts import of_version

WIDTH, PANEL, PAD = 1400, 330, 20
BAR, LINE, ALERT, GREY = (60, 110, 200), (200, 120, 30), (200, 40, 40), (120, 120, 120)


def render(versions: list[dict[str, Any]], alerts: list[dict[str, Any]], config: MonitoringConfig, path: Path) -> None:
    font, small = ImageFont.load_default(size=18), ImageFont.load_default(size=13)
    height = 70 + PANEL * max(1, len(versions))
    image = Image.new("RGB", (WIDTH, height), "white")
    pen = ImageDraw.Draw(image)
    window = versions[0]["window"] if versions else {"from": "-", "to": "-"}
    pen.text((PAD, 15), f"Model monitoring, {window['from']} to {window['to']}", fill="black", font=font)
    if not versions:
        pen.text((PAD, 60), "No results yet.", fill="black", font=font)
    for k, v in enumerate(versions):
        top = 60 + k * PANEL
        mine = of_version(alerts, v)
        head = f"{v['model']} {v['model_version']}: {v['analysed']} studies, positive {_pct(v['positive_rate'])}"
        head += f" (baseline {_pct(v['baseline_positive_rate'])}), {len(mine)} open alert(s)"
        pen.text((PAD, top), head, fill=ALERT if mine else "black", font=font)
        boxes = [(PAD + i * (WIDTH - PAD) // 4, top + 35, (WIDTH - PAD) // 4 - PAD, PANEL - 90) for i in range(4)]
        per_day = v["per_day"]
        _bars(
            pen,
            boxes[0],
            "studies per day (positive in orange)",
            [d["analysed"] for d in per_day],
            [d["positive"] for d in per_day],
            small,
        )
        _bars(pen, boxes[1], "score histogram (max probability 0-1)", v["score_histogram"], None, small)
        psi = {name: value for name, value in v["drift"]["psi"].items() if value is not None}
        _drift(pen, boxes[2], f"input drift, PSI (alert > {config.psi_alert})", psi, config.psi_alert, small)
        agreement = [d["agree"] / d["verdicts"] if d["verdicts"] else 0.0 for d in v["feedback"]["per_day"]]
        _bars(
            pen,
            boxes[3],
            f"reader agreement per day (alert < {config.agreement_alert})",
            agreement,
            None,
            small,
            limit=config.agreement_alert,
            top_value=1.0,
        )
        y = top + PANEL - 45
        for a in mine[:2]:
            pen.text((PAD, y), f"ALERT {a['kind']}: {a['detail']}"[:180], fill=ALERT, font=small)
            y += 16
    image.save(path, format="PDF" if path.suffix.lower() == ".pdf" else "PNG")


def _bars(
    pen: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    title: str,
    values: list[float],
    overlay: list[float] | None,
    font: ImageFont.ImageFont,
    names: list[str] | None = None,
    limit: float | None = None,
    top_value: float | None = None,
) -> None:
    x0, y0, width, height = box
    pen.text((x0, y0), title, fill="black", font=font)
    base, chart = y0 + height, height - 40
    pen.line([(x0, base), (x0 + width, base)], fill=GREY)
    highest = top_value or max([*values, limit or 0, 1e-9])
    if not values:
        pen.text((x0, y0 + 30), "no data", fill=GREY, font=font)
        return
    step = width / len(values)

    def y(value: float) -> float:
        return base - chart * min(value / highest, 1.0)

    for i, value in enumerate(values):
        left = x0 + i * step + 1
        pen.rectangle(
            [left, y(value), left + max(step - 2, 1), base], fill=ALERT if limit and names and value > limit else BAR
        )
        if overlay is not None:
            pen.rectangle([left, y(overlay[i]), left + max(step - 2, 1), base], fill=LINE)
        if names:
            pen.text((left, base + 3), names[i][:6], fill=GREY, font=font)
    if limit is not None:
        pen.line([(x0, y(limit)), (x0 + width, y(limit))], fill=ALERT, width=2)
    pen.text((x0 + width - 60, y0 + 18), f"max {max(values):.3g}", fill=GREY, font=font)


def _drift(
    pen: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    title: str,
    psi: dict[str, float],
    limit: float,
    font: ImageFont.ImageFont,
) -> None:
    """One horizontal bar per feature, its name on the left, red past the limit."""
    x0, y0, width, height = box
    pen.text((x0, y0), title, fill="black", font=font)
    if not psi:
        pen.text((x0, y0 + 30), "no data", fill=GREY, font=font)
        return
    label_w, row = 130, min(18, (height - 25) // len(psi))
    highest = max([*psi.values(), limit * 2])
    scale = (width - label_w - 50) / highest
    for i, (name, value) in enumerate(psi.items()):
        y = y0 + 22 + i * row
        pen.text((x0, y), name[:18], fill="black", font=font)
        pen.rectangle(
            [x0 + label_w, y + 2, x0 + label_w + max(value * scale, 1), y + row - 3],
            fill=ALERT if value > limit else BAR,
        )
        pen.text((x0 + label_w + value * scale + 4, y), f"{value:.2f}", fill=GREY, font=font)
    x_limit = x0 + label_w + limit * scale
    pen.line([(x_limit, y0 + 20), (x_limit, y0 + 22 + len(psi) * row)], fill=ALERT, width=1)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
