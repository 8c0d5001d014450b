"""The built-in detectors on held-out sets at scanners' and detectors' geometries.

The sets are generated at TEST_SEED, never used for training (seed 0) or calibration (CALIBRATION_SEED):
CT heads over fields of view 180-320 mm, matrices 256-512 and slices 0.625-5 mm (capped at 8 M voxels here
to keep the suite's time), films with a 768-1536 px longest side, every acquisition drawn at random. These
are synthetic figures: they say how the pipeline holds across acquisitions, not that the models work on
patients.

The issue's targets are AUC >= 0.95, sensitivity and specificity >= 0.90, ECE <= 0.08. Measured on this set:
ct-hemorrhage 0.5.4 AUC 1.00, sensitivity 1.00, specificity 1.00, ECE 0.09 (95% CI 0.06-0.12; a perfectly
calibrated model would show 0.08 on these 60 cases, so 0.08 cannot be shown on a set this small; 0.5.1, before
the peak factor: AUC 0.97, specificity 0.97, ECE 0.12), reported/true volume a median 0.91 with 45% of positives
within +-25% (13 of 29; 0.5.3, before the partial-volume measure: 0.96 and 38%; 0.5.2, before the growth barrier
at 200 HU: 0.85 and 34%; 0.4.0, whose masks were the network's alone: 0.46 and 14%), lesion-level sensitivity
0.80 of 46 planted bleeds;
cxr-pneumothorax 0.5.0 AUC 0.99, sensitivity 0.98, specificity 0.98, ECE 0.02, localised 0.98 (0.4.0, the same
network before the hard-negative phase: 0.99, 0.96, 0.96, 0.06; 0.3.0, two levels: 0.98, 0.94, 0.94, 0.07).
The floors below sit under those figures (the radiograph's at the issue's target), so a retrain or a pipeline
change that makes either worse fails here (README, "Models").
"""

from __future__ import annotations

import numpy as np
import pytest

from models.detector import Detector
from models.phantom_evaluation import TEST_SEED, chest_cases, ct_head_cases, evaluate
from models.phantoms.abdomen_xr import abdomen_radiograph
from tests.support.volumes import as_volume

FLOORS = {
    "ct-hemorrhage": {"auc": 0.93, "sensitivity": 0.90, "specificity": 0.90},
    "cxr-pneumothorax": {"auc": 0.95, "sensitivity": 0.90, "specificity": 0.90},
}
MAX_ECE = {"ct-hemorrhage": 0.15, "cxr-pneumothorax": 0.1}


def above_floors(name: str, figures: dict) -> None:
    for key, minimum in FLOORS[name].items():
        assert figures[key] >= minimum, (key, figures)
    assert figures["ece"] <= MAX_ECE[name], figures
    assert figures["unreadable"] == [] and figures["out_of_scope"] == []
    low, high = figures["auc_ci"]
    assert low <= figures["auc"] <= high


@pytest.mark.timeout(1200)  # 60 heads of up to 8 M voxels, generated and read on 2 cores
def test_ct_hemorrhage_on_held_out_heads_at_scanner_geometries(ct_model: Detector) -> None:
    figures = evaluate(ct_model, ct_head_cases(TEST_SEED, 60, max_voxels=8e6))
    assert figures["cases"] == 60 and 20 <= figures["positives"] <= 40, figures
    above_floors("ct-hemorrhage", figures)
    assert figures["localised"] >= 0.9, figures
    volumes = figures["volume_ratio"]  # masks grown into the image: no longer a fraction of a subdural
    assert 0.75 <= volumes["median"] <= 1.33 and volumes["within_25_percent"] >= 0.4, volumes  # 0.5.3 failed it
    assert figures["lesion_sensitivity"] >= 0.7 and figures["lesions"] < 60, figures  # planted bleeds, not fragments
    thickness = figures["subgroups"]["slice thickness (mm)"]
    assert len(thickness) >= 3, thickness  # the set does span acquisitions
    for group in figures["subgroups"]["matrix"].values():  # no matrix the detector cannot read
        assert group["sensitivity"] >= 0.8 and group["specificity"] >= 0.75, figures["subgroups"]["matrix"]


@pytest.mark.timeout(900)
def test_cxr_pneumothorax_on_held_out_films_at_detector_geometries(cxr_model: Detector) -> None:
    figures = evaluate(cxr_model, chest_cases(TEST_SEED, 100, sizes=(768, 1536)))
    above_floors("cxr-pneumothorax", figures)
    assert figures["localised"] >= 0.85, figures
    edge = figures["subgroups"]["field"]
    assert set(edge) == {"air around", "soft tissue to the edge"}, edge
    for group in edge.values():  # 0.1.0 flagged every film with soft tissue to the edge, 0.2.0 one in four
        assert group["specificity"] >= 0.85, edge


@pytest.mark.timeout(600)
def test_cxr_pneumothorax_leaves_abdomen_films_unflagged(cxr_model: Detector) -> None:
    """An abdomen film labelled CHEST that the scope gate's lung field check lets through (about one in five) reaches
    the model. 0.4.0, trained on chest films alone, flagged 221 of 300 such films at seed 9,800,000; 0.5.0, tuned on
    abdomen films as hard negatives (a pool of their own, seed 9,100,000), 9. On these 40, of a seed used nowhere
    else: 0.4.0 31, 0.5.0 1."""
    output = cxr_model.manifest.outputs[0]
    rng = np.random.default_rng(9_900_000)
    flagged = 0
    for _ in range(40):
        image, spacing = abdomen_radiograph(rng, size=1024)
        scores = cxr_model.analyse(as_volume(image[None], (1.0, *spacing), "DX")).scores
        flagged += scores[output.label] >= output.threshold
    assert flagged <= 4, f"{flagged} of 40 abdomen films flagged as pneumothorax"
