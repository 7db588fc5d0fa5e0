"""PNG previews of a built dataset: orientation, overlay position against the synthetic ground
truth, files, fallbacks to other configs, errors and the command line."""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from matplotlib.image import imread

from tcia_trials.build import build
from tcia_trials.cli import main
from tcia_trials.errors import PreviewError
from tcia_trials.preview import (
    LesionVolume,
    lesion_figure,
    lesion_panels,
    lps_axes,
    lps_view,
    preview_window,
    write_previews,
)
from tcia_trials.slices import outline
from tcia_trials.synthetic import generate_collection

PATIENT = "SYNTH-0001"  # seed 1: one lesion per study, CT and PET; SYNTH-0002 has no findings


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> tuple[Path, dict]:
    """A synthetic build of 2 patients with the configs previews read."""
    root = tmp_path_factory.mktemp("preview")
    truth = json.loads(generate_collection(root / "source", patients=2, seed=1).read_text())
    result = build(
        "synthetic_trial",
        root / "source",
        root / "out",
        config=("volume", "lesion_patches", "slices_2d"),
    )
    return result.out, truth


def _copy_without(dataset: Path, tmp_path: Path, *configs: str) -> Path:
    copy = tmp_path / "dataset"
    shutil.copytree(dataset, copy)
    for config in configs:
        shutil.rmtree(copy / "data" / config)
    return copy


def _ct_example(dataset: Path) -> dict:
    """The first CT row of the volume config, read with pyarrow alone."""
    for shard in sorted((dataset / "data" / "volume").glob("*.parquet")):
        for row in pq.read_table(shard).to_pylist():
            if row["modality"] == "CT" and row["lesions"]:
                return row
    raise AssertionError("no CT series with lesions")


def _volume(row: dict, number: int = 0) -> LesionVolume:
    shape = tuple(row["image_shape"])
    return LesionVolume(
        image=np.asarray(row["image"]).reshape(shape),
        labels=np.asarray(row["mask"], dtype=np.uint32).reshape(shape),
        bit=number,
        seed_voxel=tuple(row["lesions"][number]["seed_voxel"]) or None,
        spacing=tuple(row["spacing"]),
        direction=np.asarray(row["direction"]),
    )


def _signed_permutations():
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            direction = np.zeros((3, 3))
            for axis, (component, sign) in enumerate(zip(perm, signs, strict=True)):
                direction[component, axis] = sign
            yield direction


@pytest.mark.parametrize("direction", list(_signed_permutations()))
def test_lps_view_puts_every_axis_order_in_lps_order(direction):
    shape = (3, 4, 5)
    affine = np.eye(4)
    affine[:3, :3] = direction * [2.5, 0.7, 0.9]
    k, j, i = np.indices(shape)
    lps = np.einsum("ab,b...->a...", affine, np.stack([k, j, i, np.ones(shape)]))
    for a, component in enumerate((2, 1, 0)):  # view axes (z, y, x) = LPS components (2, 1, 0)
        view = lps_view(lps[component], direction)
        assert np.all(np.diff(view, axis=a) > 0)  # increasing towards S, P and L
        assert np.all(np.diff(view, axis=(a + 1) % 3) == 0)


def test_an_oblique_series_gets_its_nearest_orientation():
    angle = np.radians(25)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    axial_flipped_rows = np.array([[0, 0, 1], [0, -1, 0], [1, 0, 0]], dtype=float)
    assert lps_axes(rotation @ axial_flipped_rows) == ((0, 1, 2), (False, True, False))


def test_panels_follow_the_radiological_convention_and_the_spacing():
    """Rows posterior-down and anterior-up, the patient's right on the left, superior up, and
    the aspect of anisotropic voxels, on a volume stored in reverse (I, A, R increasing)."""
    image = np.zeros((10, 20, 30), dtype=np.int16)
    labels = np.zeros(image.shape, dtype=np.uint8)
    labels[2:5, 3:6, 4:9] = 1  # stored near the start of every axis: S, P, L in LPS
    volume = LesionVolume(
        image=image,
        labels=labels,
        bit=0,
        seed_voxel=(3.0, 4.0, 6.0),
        spacing=(3.0, 0.5, 0.8),
        direction=-np.eye(3)[:, ::-1],  # k -> -z (inferior), j -> -y (anterior), i -> -x (right)
    )
    axial, coronal, sagittal = lesion_panels(volume)
    assert (axial.plane, axial.edges, axial.caption) == (
        "axial",
        ("A", "P", "R", "L"),
        "axial, k = 3 (seed)",
    )
    rows, cols = np.nonzero(axial.mask)
    assert rows.min() > 10 and cols.min() > 15  # posterior (bottom) and left (right)
    assert axial.seed == (20 - 1 - 4, 30 - 1 - 6)
    assert axial.aspect == pytest.approx(0.5 / 0.8)
    rows, cols = np.nonzero(coronal.mask)
    assert rows.max() < 5 and cols.min() > 15  # superior (top) and left
    assert coronal.aspect == pytest.approx(3.0 / 0.8)
    assert coronal.seed == (3.0, 30 - 1 - 6)
    assert sagittal.edges == ("S", "I", "A", "P") and sagittal.aspect == pytest.approx(3.0 / 0.5)
    rows, cols = np.nonzero(sagittal.mask)
    assert rows.max() < 5 and cols.min() > 10  # superior and posterior (right)


def test_largest_area_slice_and_a_lesion_without_seed():
    labels = np.zeros((6, 8, 8), dtype=np.uint32)
    labels[1, 3:5, 3:5] = 0b10  # lesion 1, seed slice: 4 voxels
    labels[4, 2:7, 1:6] = 0b10  # lesion 1, largest area: 25 voxels, centroid (4, 3)
    labels[4, 0, 0] = 0b01  # lesion 0
    volume = LesionVolume(
        image=np.zeros(labels.shape, dtype=np.float32),
        labels=labels,
        bit=1,
        seed_voxel=(1.2, 3.5, 3.5),
        spacing=(2.0, 1.0, 1.0),
        direction=np.eye(3)[:, ::-1],  # (z, y, x) stored as (k, j, i)
    )
    seed, largest, coronal, sagittal = lesion_panels(volume)
    assert (seed.caption, largest.caption) == ("axial, k = 1 (seed)", "axial, k = 4 (largest area)")
    assert seed.seed == (3.5, 3.5) and largest.seed is None
    assert largest.mask.sum() == 25 and largest.others[0, 0] and not largest.mask[0, 0]
    assert coronal.seed == sagittal.seed == (6 - 1 - 1.2, 3.5)
    no_seed = lesion_panels(replace(volume, seed_voxel=None))
    assert [p.caption for p in no_seed] == [
        "axial, k = 4 (largest area)",
        "coronal, j = 4",
        "sagittal, i = 3",
    ]
    assert all(p.seed is None for p in no_seed)
    assert lesion_panels(replace(volume, seed_voxel=None, bit=2)) == []


def test_axial_panel_matches_the_ground_truth_ellipsoid(built):
    dataset, truth = built
    row = _ct_example(dataset)
    study = next(
        s
        for p in truth["patients"].values()
        for s in p["studies"]
        if s["ct_series_uid"] == row["series_uid"]
    )
    series = next(s for s in study["series"] if s["series_uid"] == row["series_uid"])
    for number, stored in enumerate(row["lesions"]):
        expected = next(les for les in study["lesions"] if les["label"] == stored["label"])
        panel = lesion_panels(_volume(row, number))[0]
        k = expected["seed_slice"]
        assert panel.caption == f"axial, k = {k} (seed)"
        # the synthetic series is stored in LPS order: panel pixel (row, col) is voxel (k, j, i)
        j, i = np.indices(panel.image.shape)
        affine = np.asarray(series["affine"])
        points = np.einsum(
            "ab,b...->a...", affine, np.stack([np.full(j.shape, k), j, i, np.ones(j.shape)])
        )
        inside = (
            np.sum(
                ((points[:3].T - expected["center_lps"]) / expected["semi_axes_mm"]) ** 2, axis=-1
            ).T
            <= 1
        )
        np.testing.assert_array_equal(panel.mask, inside)  # voxel centres inside: exact
        assert panel.seed == pytest.approx(tuple(expected["seed_voxel"][1:]))


def _rgb_at(figure, ax, rows, cols) -> np.ndarray:
    """Rendered RGB at the data points (row, col) of ``ax``."""
    pixels = np.asarray(figure.canvas.buffer_rgba())[:, :, :3].astype(int)
    xy = ax.transData.transform(np.column_stack([cols, rows]))
    return pixels[(pixels.shape[0] - xy[:, 1]).astype(int), xy[:, 0].astype(int)]


def test_rendered_overlay_covers_the_mask_and_nothing_else(built):
    dataset, _ = built
    row = _ct_example(dataset)
    volume = _volume(row)
    panels = lesion_panels(volume)
    window = preview_window("CT", "HU", row["lesions"][0]["location"], panels[0].image)
    figure = lesion_figure("title", panels, window, "CT")
    figure.canvas.draw()
    panel, ax = panels[0], figure.axes[0]
    near = outline(panel.mask) | outline(~panel.mask)  # the contour line runs here
    seed_row, seed_col = np.rint(panel.seed).astype(int)
    near[seed_row - 3 : seed_row + 4, seed_col - 3 : seed_col + 4] = True  # the "+" marker
    j0, i0 = np.argwhere(panel.mask).min(axis=0) - 5
    j1, i1 = np.argwhere(panel.mask).max(axis=0) + 6
    box = np.zeros_like(near)
    box[j0:j1, i0:i1] = True
    rows, cols = np.nonzero(box & ~near & ~panel.others)
    rgb = _rgb_at(figure, ax, rows, cols)
    reddish = (rgb[:, 0] - rgb[:, 1] > 40) & (rgb[:, 0] - rgb[:, 2] > 40)
    np.testing.assert_array_equal(reddish, panel.mask[rows, cols])
    assert reddish.sum() > 20


def test_files_are_valid_pngs_with_a_montage_per_patient(built, tmp_path):
    dataset, truth = built
    paths = write_previews(dataset, out_dir=tmp_path)
    lesions = sum(
        len(s["lesions"]) * (2 if s["pet_series_uid"] else 1)
        for p in truth["patients"].values()
        for s in p["studies"]
    )
    montage = tmp_path / "previews" / PATIENT / f"{PATIENT}_montage.png"
    assert montage in paths and len(paths) == lesions + 1  # SYNTH-0002: no findings, no montage
    for path in paths:
        assert path.parent == tmp_path / "previews" / PATIENT
        image = imread(path)
        assert image.ndim == 3 and min(image.shape[:2]) > 200
    names = sorted(p.name for p in paths)
    assert all(n.startswith(("CT-", "PT-")) for n in names if n != montage.name)
    assert not (dataset / "previews").exists()


def test_default_folder_lesion_filter_and_same_bytes_on_rerun(built, tmp_path):
    dataset, _ = built
    copy = _copy_without(dataset, tmp_path)
    label = _ct_example(dataset)["lesions"][0]["label"]
    first = write_previews(copy, patient=PATIENT, lesion=label)
    assert first and all(p.parent == copy / "previews" / PATIENT for p in first)
    assert not any("montage" in p.name for p in first)
    data = [p.read_bytes() for p in first]
    assert write_previews(copy, patient=PATIENT, lesion=label) == first
    assert [p.read_bytes() for p in first] == data
    assert "_montage.png" not in (copy / "README.md").read_text()
    montages = [p for p in write_previews(copy, patient=PATIENT) if "montage" in p.name]
    link = montages[0].relative_to(copy).as_posix()
    assert f"({link})" in (copy / "README.md").read_text()  # the card shows the montage


@pytest.mark.parametrize(
    ("missing", "planes"),
    [(("volume",), 3), (("volume", "lesion_patches"), 1)],
    ids=["lesion_patches", "slices_2d"],
)
def test_falls_back_to_patches_then_slices(built, tmp_path, missing, planes):
    dataset, _ = built
    copy = _copy_without(dataset, tmp_path, *missing)
    label = _ct_example(dataset)["lesions"][0]["label"]
    paths = write_previews(copy, patient=PATIENT, lesion=label)
    assert len(paths) == 4  # CT and PET at two time points
    assert all(imread(p).ndim == 3 for p in paths)
    wide = imread(paths[0]).shape[1]
    assert (wide > 1000) == (planes == 3)  # slices_2d: the axial slice alone


def test_errors_name_what_is_missing_or_available(built, tmp_path):
    dataset, _ = built
    with pytest.raises(
        PreviewError, match=r"patient 'NOBODY' is not in .*'SYNTH-0001', 'SYNTH-0002'"
    ):
        write_previews(dataset, patient="NOBODY")
    with pytest.raises(
        PreviewError, match=r"patient 'SYNTH-0002' has no lesion to draw .*'no findings'"
    ):
        write_previews(dataset, patient="SYNTH-0002")
    label = _ct_example(dataset)["lesions"][0]["label"]
    with pytest.raises(
        PreviewError, match=rf"lesion 'LIVER - 99' is not in .*its lesions: '{label}'"
    ):
        write_previews(dataset, patient=PATIENT, lesion="LIVER - 99")
    with pytest.raises(PreviewError, match=rf"built datasets in it: {dataset}"):
        write_previews(dataset.parent)
    bare = _copy_without(dataset, tmp_path, "volume", "lesion_patches", "slices_2d")
    with pytest.raises(PreviewError, match="need one of volume, lesion_patches, slices_2d"):
        write_previews(bare)


def test_cli_prints_the_paths_and_fails_cleanly(built, tmp_path):
    dataset, _ = built
    label = _ct_example(dataset)["lesions"][0]["label"]
    args = ["preview", str(dataset), "--patient", PATIENT, "--lesion", label]
    result = CliRunner().invoke(main, [*args, "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    printed = result.output.split()
    assert len(printed) == 4 and all(Path(p).is_file() for p in printed)
    result = CliRunner().invoke(main, ["preview", str(dataset), "--patient", "NOBODY"])
    assert result.exit_code == 1
    assert "Error: patient 'NOBODY' is not in" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(main, ["preview", "--help"])
    assert result.exit_code == 0 and "--out-dir" in result.output
