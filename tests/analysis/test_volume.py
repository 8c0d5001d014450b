"""Volume loading: geometry from the headers, modality values, compressed pixel data, and clear errors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, RLELossless

from dicomnode.analysis.volume import StudyUnreadable, load_series
from dicomnode.demo.synthetic import SeriesSpec, ct_slice
from tests.support.helpers import run_dcmtk

SLOPE, INTERCEPT = 2.0, -1000.0


def write_series(tmp: Path, n: int = 6, step_mm: float = 2.5, shuffle: bool = True) -> tuple[list[Path], list]:
    """Slices whose HU value is 10 x their position index; positions run feet to head along -z."""
    tmp.mkdir(parents=True, exist_ok=True)
    spec = SeriesSpec(n_slices=n, rows=64, columns=48, pixel_spacing_mm=0.7)
    datasets = []
    for i in range(n):
        hu = np.full((64, 48), 10.0 * i)
        hu[0, 0] = -1000.0
        ds = ct_slice(spec, i, pixels=((hu - INTERCEPT) / SLOPE).astype(np.int16))
        ds.RescaleSlope, ds.RescaleIntercept = SLOPE, INTERCEPT
        ds.ImagePositionPatient = [-10.0, 20.0, 100.0 - step_mm * i]
        ds.SliceThickness = step_mm
        datasets.append(ds)
    order = list(range(n))
    if shuffle:
        random.Random(7).shuffle(order)
    paths = []
    for k, i in enumerate(order):  # stored in a shuffled order under unrelated names
        path = tmp / f"f{k}.dcm"
        datasets[i].save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths, datasets


def test_slices_are_sorted_along_the_normal_with_rescale_and_spacing(tmp_path: Path) -> None:
    paths, datasets = write_series(tmp_path)
    vol = load_series(paths, datasets[0].SeriesInstanceUID)
    assert vol.array.shape == (6, 64, 48) and vol.array.dtype == np.float32
    assert vol.spacing_mm == pytest.approx((2.5, 0.7, 0.7))
    along_normal = [float(v[0, 1]) for v in vol.array]  # HU 10 x index, sorted by position on the normal
    assert along_normal == sorted(along_normal) or along_normal == sorted(along_normal, reverse=True)
    assert vol.array[0, 0, 0] == -1000.0, "rescale slope and intercept applied"
    by_uid = {ds.SOPInstanceUID: ds for ds in datasets}
    for k, uid in enumerate(vol.slice_uids):
        assert float(vol.array[k, 1, 1]) == 10.0 * datasets.index(by_uid[uid])
        position = vol.affine @ np.array([k, 0, 0, 1.0])
        assert position[:3] == pytest.approx([float(v) for v in by_uid[uid].ImagePositionPatient])
    assert vol.voxel_ml == pytest.approx(2.5 * 0.7 * 0.7 / 1000)


def test_a_missing_slice_is_a_clear_error(tmp_path: Path) -> None:
    paths, datasets = write_series(tmp_path, shuffle=False)
    del paths[3]
    with pytest.raises(StudyUnreadable, match="not one evenly spaced stack"):
        load_series(paths, datasets[0].SeriesInstanceUID)


def test_mixed_image_sizes_in_a_series_are_a_clear_error(tmp_path: Path) -> None:
    paths, datasets = write_series(tmp_path, shuffle=False)
    other = ct_slice(SeriesSpec(rows=8, columns=8, series_uid=datasets[0].SeriesInstanceUID), 9)
    other.save_as(tmp_path / "other.dcm", enforce_file_format=True)
    with pytest.raises(StudyUnreadable, match="mixed Rows"):
        load_series([*paths, tmp_path / "other.dcm"], datasets[0].SeriesInstanceUID)


def test_unreadable_file_and_no_instances_are_clear_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    with pytest.raises(StudyUnreadable, match="cannot read stored instance junk.dcm"):
        load_series([junk], "1.2.3")
    with pytest.raises(StudyUnreadable, match="no stored instances"):
        load_series([], "1.2.3")


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, RLELossless])
def test_compressed_series_decode_to_the_same_volume(tmp_path: Path, syntax: str) -> None:
    paths, datasets = write_series(tmp_path / "plain")
    expected = load_series(paths, datasets[0].SeriesInstanceUID)
    compressed = []
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(syntax, generate_instance_uid=False)  # JPEG 2000 through pylibjpeg-openjpeg; RLE through pydicom
        compressed.append(tmp_path / p.name)
        ds.save_as(compressed[-1], enforce_file_format=True)
    vol = load_series(compressed, datasets[0].SeriesInstanceUID)
    assert pydicom.dcmread(compressed[0]).file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(vol.array, expected.array)
    assert vol.slice_uids == expected.slice_uids


def test_jpeg_lossless_from_dcmtk_decodes(tmp_path: Path) -> None:
    paths, datasets = write_series(tmp_path / "plain")
    expected = load_series(paths, datasets[0].SeriesInstanceUID)
    compressed = []
    for p in paths:
        out = tmp_path / p.name
        r = run_dcmtk("dcmcjpeg", "--encode-lossless-sv1", str(p), str(out))  # JPEG Lossless, process 14 SV1
        assert r.returncode == 0, r.stderr
        compressed.append(out)
    assert pydicom.dcmread(compressed[0]).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    np.testing.assert_array_equal(load_series(compressed, datasets[0].SeriesInstanceUID).array, expected.array)


def test_undecodable_pixel_data_is_a_clear_error(tmp_path: Path) -> None:
    paths, datasets = write_series(tmp_path, n=3, shuffle=False)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51 this is not a codestream"])
        ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
        ds.save_as(p, enforce_file_format=True)
    with pytest.raises(StudyUnreadable, match="cannot build a volume"):
        load_series(paths, datasets[0].SeriesInstanceUID)


def test_projection_radiograph_is_one_slice(tmp_path: Path) -> None:
    ds = ct_slice(SeriesSpec(rows=20, columns=10, modality="DX"), 0)
    for attr in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "FrameOfReferenceUID"):
        del ds[attr]
    ds.ImagerPixelSpacing = [0.2, 0.3]
    ds.save_as(tmp_path / "dx.dcm", enforce_file_format=True)
    vol = load_series([tmp_path / "dx.dcm"], ds.SeriesInstanceUID)
    assert vol.array.shape == (1, 20, 10) and vol.spacing_mm == (1.0, 0.2, 0.3)
    assert vol.slice_uids == (ds.SOPInstanceUID,) and vol.modality == "DX"


def test_slices_in_different_frames_of_reference_are_a_clear_error(tmp_path: Path) -> None:
    paths, datasets = write_series(tmp_path, shuffle=False)
    moved = datasets[2]
    moved.FrameOfReferenceUID = "1.2.3.4.5.6"
    moved.save_as(paths[2], enforce_file_format=True)
    with pytest.raises(StudyUnreadable, match="2 Frame of Reference UIDs within the series"):
        load_series(paths, datasets[0].SeriesInstanceUID)


def test_an_unknown_character_set_is_named_at_load(tmp_path: Path) -> None:
    paths, datasets = write_series(tmp_path, shuffle=False)
    for path, ds in zip(paths, datasets, strict=True):
        ds.SpecificCharacterSet = "ISO_IR 999"
        ds.save_as(path, enforce_file_format=True)
    with pytest.raises(StudyUnreadable, match="unknown Specific Character Set ISO_IR 999"):
        load_series(paths, datasets[0].SeriesInstanceUID)


def test_code_extensions_of_known_character_sets_load(tmp_path: Path) -> None:
    paths, datasets = write_series(tmp_path, shuffle=False)
    for path, ds in zip(paths, datasets, strict=True):
        ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]  # Japanese, as scanners there send it
        ds.save_as(path, enforce_file_format=True)
    assert load_series(paths, datasets[0].SeriesInstanceUID).array.shape[0] == 6


def test_a_series_loaded_into_reused_memory_has_only_its_own_values(tmp_path: Path) -> None:
    paths, datasets = write_series(tmp_path / "a", n=8)
    first = load_series(paths, datasets[0].SeriesInstanceUID)
    expected = first.array.copy()
    address = first.array.__array_interface__["data"][0]
    del first
    paths_b, datasets_b = write_series(tmp_path / "b", n=5, step_mm=1.0)
    second = load_series(paths_b, datasets_b[0].SeriesInstanceUID)
    assert second.array.__array_interface__["data"][0] == address, "the first volume is gone: memory reused"
    assert second.array.shape == (5, 64, 48)
    assert sorted(float(v[1, 1]) for v in second.array) == [10.0 * i for i in range(5)]
    again = load_series(paths, datasets[0].SeriesInstanceUID)
    assert again.array.__array_interface__["data"][0] != address, "the second volume is alive: new memory"
    np.testing.assert_array_equal(again.array, expected)
