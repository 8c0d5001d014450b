"""ct-hemorrhage: geometry round trip, probabilities, training smoke test, and the committed weights at work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.ct_hemorrhage import WEIGHTS, CtHemorrhageModel, evaluate
from models.image import ImageVolume
from models.phantoms.ct_head import ct_head
from models.train_ct_hemorrhage import TrainConfig, train


def as_volume(hu: np.ndarray, spacing: tuple[float, float, float]) -> ImageVolume:
    affine = np.diag([*spacing, 1.0])
    return ImageVolume(
        hu.astype(np.float32), spacing, affine, "1.2.3", "CT", tuple(f"1.2.3.{i}" for i in range(len(hu)))
    )


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("w") / "tiny.pt"
    record = train(TrainConfig(steps=2, pool=2, batch=1), out, log=lambda _: None)
    assert out.is_file() and out.with_suffix(".json").is_file() and record["config"]["steps"] == 2
    return out


def test_probabilities_come_back_on_the_input_grid_at_any_spacing(tiny_weights: Path) -> None:
    model = CtHemorrhageModel("cpu", tiny_weights)
    rng = np.random.default_rng(0)
    for shape, spacing in [((10, 90, 70), (2.5, 0.7, 0.9)), ((7, 33, 50), (5.0, 1.5, 1.5))]:
        prob = model.probabilities(as_volume(rng.normal(30, 10, shape), spacing))
        assert prob.shape == shape and prob.dtype.kind == "f"
        assert prob.min() >= 0.0 and prob.max() <= 1.0


def test_committed_weights_detect_and_localise_bleeds_on_held_out_phantoms() -> None:
    assert WEIGHTS.is_file(), "train with: dicomnode models train ct-hemorrhage"
    model = CtHemorrhageModel("cpu")
    figures = evaluate(model, seed=9000, cases=24)
    # Measured on these seeds when the weights were committed: see the README. Margins allow a retrain.
    assert figures["auc"] >= 0.9 and figures["sensitivity"] >= 0.8 and figures["specificity"] >= 0.6, figures
    assert figures["dice_median"] >= 0.4, figures
    for seed in (9500, 9501):
        p = ct_head(np.random.default_rng(seed), bleeds=1)
        findings = model.predict(as_volume(p.hu, p.spacing_mm))
        assert findings, f"seed {seed}: missed a {p.lesions[0].volume_ml:.1f} mL {p.lesions[0].kind} bleed"
        z0, y0, x0, z1, y1, x1 = findings[0].bbox
        truth = np.argwhere(p.bleed_mask)
        assert any(z0 <= z < z1 and y0 <= y < y1 and x0 <= x < x1 for z, y, x in truth), "the finding is on the bleed"
        assert 0.5 <= findings[0].score <= 1.0 and findings[0].volume_ml > 0
