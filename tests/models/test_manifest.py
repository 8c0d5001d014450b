"""Model manifests: a valid one loads; each kind of mistake is refused with the file and key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.manifest import ManifestError, load_manifest, weights_uid

VALID = """
name = "ct-hemorrhage"
version = "1.0.0"
family = "ct"
task = "segmentation"
modalities = ["CT"]
body_parts = ["HEAD", "BRAIN"]
weights = "w.pt2"

[preprocessing]
window = { center = 40, width = 80 }
spacing_mm = [5.0, 1.0, 1.0]
pad_multiple = [2, 4, 4]

[[outputs]]
label = "intracranial hemorrhage"
code = { scheme = "SCT", value = "1386000", meaning = "Intracranial hemorrhage" }
threshold = 0.5
urgency = 1.0
"""


def write(tmp: Path, text: str) -> Path:
    (tmp / "w.pt2").write_bytes(b"weights")
    path = tmp / "manifest.toml"
    path.write_text(text)
    return path


def test_a_valid_manifest_loads(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, VALID))
    assert (m.name, m.task, m.format, m.modalities) == ("ct-hemorrhage", "segmentation", "pt2", ["CT"])
    assert m.preprocessing.window.width == 80 and m.preprocessing.spacing_mm == (5.0, 1.0, 1.0)
    assert m.outputs[0].code.value == "1386000" and m.outputs[0].threshold == 0.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("threshold = 0.5", "threshold = 1.5"), r"outputs\.0\.threshold: .*less than or equal to 1"),
        (
            ('code = { scheme = "SCT", value = "1386000", meaning = "Intracranial hemorrhage" }\n', ""),
            r"outputs\.0\.code: Field required",
        ),
        (('task = "segmentation"', 'task = "guessing"'), r"task: Input should be"),
        (('modalities = ["CT"]', "modalities = []"), r"modalities: List should have at least 1 item"),
        (("width = 80", "width = 0"), r"preprocessing\.window\.width"),
        (("spacing_mm = [5.0, 1.0, 1.0]", "spacing_mm = [5.0, 0, 1.0]"), r"spacing_mm: .*above 0 mm"),
        (
            ("[preprocessing]", '[preprocessing]\npad = "zero"'),
            r"preprocessing\.pad: Input should be 'minimum' or 'edge'",
        ),
        (('version = "1.0.0"', 'version = "1.0.0"\ncolour = "blue"'), r"colour: Extra inputs are not permitted"),
        (('name = "ct-hemorrhage"', 'name = "CT Hemorrhage!"'), r"name: String should match pattern"),
        (('weights = "w.pt2"', 'weights = "missing.pt2"'), r"weights: file not found"),
        (
            (
                "urgency = 1.0",
                'urgency = 1.0\n\n[[outputs]]\nlabel = "intracranial hemorrhage"\n'
                'code = { scheme = "SCT", value = "1", meaning = "x" }\nthreshold = 0.5\nurgency = 0.1',
            ),
            r"output labels must be unique",
        ),
        (("[preprocessing]", "[preprocessing"), r"cannot read"),
        (
            ("urgency = 1.0", "urgency = 1.0\npeak = { max_value = 110.0, barrier = 100.0 }"),
            r"outputs\.0\.peak: .*barrier above max_value",
        ),
    ],
)
def test_mistakes_are_refused_naming_the_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new))
    with pytest.raises(ManifestError, match=message) as err:
        load_manifest(path)
    assert str(path) in str(err.value)


def test_weights_uid_changes_exactly_when_the_weights_change(tmp_path: Path) -> None:
    w = tmp_path / "w.pt2"
    w.write_bytes(b"one")
    first = weights_uid(w)
    assert first == weights_uid(w) and first.startswith("2.25.") and len(first) <= 64
    w.write_bytes(b"two")
    assert weights_uid(w) != first
