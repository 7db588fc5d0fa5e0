"""Series holding several stacks (multi-b-value DWI, 4D, multi-echo): reading each stack, and the
build's stack policies (``TrialSpec.stacks``, ``tt.build(stacks=...)``, ``--stacks``)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import datasets
import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

import tcia_trials as tt
from tcia_trials.build import build
from tcia_trials.cli import main
from tcia_trials.registry import builder
from tcia_trials.schema import config_fields, stack_fields
from tcia_trials.source.volume import read_stacks
from tcia_trials.spec import StackPolicy
from tcia_trials.synthetic.dwi import write_dwi_study
from tcia_trials.verify import verify

IMAGE_CONFIGS = ("volume", "lesion_patches", "slices_2d")


@pytest.fixture(scope="module")
def dwi(tmp_path_factory):
    root = tmp_path_factory.mktemp("dwi")
    return write_dwi_study(root / "source"), root


@pytest.fixture(scope="module")
def built_each(dwi):
    truth, root = dwi
    result = build(
        "generic", root / "source", root / "each", stacks="each", config=(*IMAGE_CONFIGS, "lesions")
    )
    return truth, result


def _rows(result, config):
    return [
        row
        for split in result.configs[config]
        for row in datasets.load_dataset(str(result.out), config, split=split).with_format(
            "numpy", dtype=None
        )
    ]


# -- reading -------------------------------------------------------------------------------


def test_each_dwi_stack_reads_its_own_voxels_and_b_value(dwi):
    truth, _ = dwi
    series = read_stacks(list(truth.image_paths))
    assert [s.descriptors()["b_value"] for s in series.stacks] == list(truth.b_values)
    assert {s.descriptors()["echo_time"] for s in series.stacks} == {60.0}
    for n, b_value in enumerate(truth.b_values):
        volume = series.volume(n)
        np.testing.assert_array_equal(volume.array, truth.images[b_value])
        assert volume.origin == pytest.approx(truth.origin)
        assert volume.spacing == pytest.approx(truth.spacing)
        assert volume.stack == f"DiffusionBValue={b_value}"


def test_seg_drawn_on_one_stack_lands_on_every_stack_with_its_grid(dwi):
    truth, root = dwi
    index = tt.scan(root / "source")
    series = read_stacks(index, truth.series_uid)
    for n, b_value in enumerate(truth.b_values):
        annotations = tt.read_annotations(index, truth.series_uid, volume=series.volume(n))
        (lesion,) = annotations.lesions
        np.testing.assert_array_equal(lesion.mask, truth.mask)
        other = [f for f in lesion.flags if f.startswith("other-stack")]
        assert bool(other) == (b_value != truth.seg_b_value)


# -- policies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("single", StackPolicy("single")),
        ("each", StackPolicy("each")),
        ("index:2", StackPolicy("index", index=2)),
        ("b_value=800", StackPolicy("key", key="b_value", value=800.0)),
        (" temporal_index=3 ", StackPolicy("key", key="temporal_index", value=3.0)),
    ],
)
def test_stack_policies_parse(text, policy):
    assert StackPolicy.parse(text) == policy
    assert StackPolicy.parse(str(policy)) == policy


@pytest.mark.parametrize("text", ["all", "index:-1", "index:x", "b_value=", "flip_angle=90", ""])
def test_bad_stack_policies_are_refused_naming_the_field(text):
    with pytest.raises(ValueError, match=r"TrialSpec\.stacks: got .*expected \"single\", \"each\""):
        dataclasses.replace(builder("generic"), stacks=text)


def test_stack_fields_only_with_a_stack_policy():
    plain = config_fields("volume", image_dtype="float32", patch_shape=(1, 1, 1), clinical={})
    stacked = config_fields(
        "volume", image_dtype="float32", patch_shape=(1, 1, 1), clinical={}, stacks=True
    )
    names = [f.name for f in stacked]
    assert [f.name for f in plain] == [
        n for n in names if n not in {f.name for f in stack_fields()}
    ]
    assert names[5:8] == ["stack_index", "stack_count", "stack_key"]
    lesions = config_fields("lesions", image_dtype="float32", patch_shape=(1, 1, 1), clinical={})
    assert lesions == config_fields(
        "lesions", image_dtype="float32", patch_shape=(1, 1, 1), clinical={}, stacks=True
    )


# -- builds --------------------------------------------------------------------------------


def test_each_gives_one_volume_per_stack_with_identical_masks(built_each):
    truth, result = built_each
    assert not result.skipped
    rows = sorted(_rows(result, "volume"), key=lambda row: int(row["stack_index"]))
    assert [float(row["b_value"]) for row in rows] == list(truth.b_values)
    assert [int(row["stack_count"]) for row in rows] == [len(truth.b_values)] * len(rows)
    assert [str(row["stack_key"]) for row in rows] == [
        f"DiffusionBValue={b}" for b in truth.b_values
    ]
    plain = datasets.load_dataset(str(result.out), "volume", split="train")
    assert plain["echo_number"] == plain["temporal_index"] == [None] * len(rows)  # n/a: null
    assert plain["echo_time"] == [60.0] * len(rows)
    for row in rows:
        shape = tuple(row["image_shape"])
        np.testing.assert_array_equal(
            row["image"].reshape(shape), truth.images[float(row["b_value"])]
        )
        np.testing.assert_array_equal(row["mask"].reshape(shape), truth.mask.astype(np.uint32))


def test_each_gives_unique_keys_per_stack(built_each):
    truth, result = built_each
    n = len(truth.b_values)
    assert result.configs["volume"] == {"train": n}
    assert result.configs["lesion_patches"] == {"train": n}
    slices = int(truth.mask.any(axis=(1, 2)).sum())  # generic: every slice holding the lesion
    assert result.configs["slices_2d"] == {"train": n * slices}
    assert result.configs["lesions"] == {"train": 1}  # from the annotation alone: no stacks
    patches = _rows(result, "lesion_patches")
    assert sorted(int(row["stack_index"]) for row in patches) == list(range(n))
    masks = {row["patch_mask"].tobytes() for row in patches}
    assert len(masks) == 1 and np.count_nonzero(patches[0]["patch_mask"]) == truth.mask.sum()
    slice_keys = {
        (int(row["stack_index"]), int(row["slice_index"])) for row in _rows(result, "slices_2d")
    }
    assert len(slice_keys) == n * slices


def test_verify_rereads_each_stack(built_each):
    _, result = built_each
    checked = verify(result.out, sample=4)
    assert not checked.errors
    assert any("4 volume example(s) equal the series re-read" in line for line in checked.checked)


@pytest.mark.parametrize(("stacks", "b_value"), [("b_value=800", 800.0), ("index:1", 100.0)])
def test_a_chosen_stack_gives_one_example(dwi, tmp_path, stacks, b_value):
    truth, root = dwi
    result = build("generic", root / "source", tmp_path, stacks=stacks, config="volume")
    (row,) = _rows(result, "volume")
    assert float(row["b_value"]) == b_value
    np.testing.assert_array_equal(
        row["image"].reshape(tuple(row["image_shape"])), truth.images[b_value]
    )


@pytest.mark.parametrize(
    ("stacks", "why"),
    [
        (None, r"holds 4 stacks \(stack 0: DiffusionBValue=0\.0.*build them with a stack policy"),
        ("b_value=50", r"'b_value=50' chooses one stack, but none of its stacks has it"),
        ("index:7", r"'index:7' chooses one stack, but it has no such stack; its 4 stacks"),
    ],
)
def test_a_multi_stack_series_not_handled_is_a_recorded_skip(dwi, tmp_path, stacks, why):
    truth, root = dwi
    result = build(
        "generic", root / "source", tmp_path, stacks=stacks, config=("volume", "lesions")
    )
    assert result.configs["lesions"] == {"train": 1}
    ((config, what, reason),) = result.skipped
    assert (config, what) == ("volume", truth.series_uid)
    assert sum(result.configs["volume"].values()) == 0
    assert re.search(why, reason)


def test_single_stack_series_keep_their_keys_under_each(tmp_path):
    from tcia_trials.synthetic import generate_collection

    source = tmp_path / "source"
    generate_collection(source, patients=1, seed=3, with_pet=False)
    plain = build("synthetic_trial", source, tmp_path / "plain", config="volume")
    each = build("synthetic_trial", source, tmp_path / "each", config="volume", stacks="each")
    assert plain.configs == each.configs
    plain_rows, each_rows = _rows(plain, "volume"), _rows(each, "volume")
    assert "stack_index" not in plain_rows[0]
    for a, b in zip(plain_rows, each_rows, strict=True):
        assert (int(b["stack_index"]), int(b["stack_count"]), str(b["stack_key"])) == (0, 1, "")
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["mask"], b["mask"])


def test_tfds_build_with_stacks_holds_the_same_stacks(dwi, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    truth, root = dwi
    result = build(
        "generic",
        root / "source",
        tmp_path,
        stacks="each",
        config="volume",
        formats=("hf", "tfds"),
        tfds_file_format="array_record",
    )
    assert result.tfds == result.configs == {"volume": {"train": len(truth.b_values)}}
    source = tfds.builder("generic/volume", data_dir=str(tmp_path)).as_data_source(split="train")
    for row in (source[n] for n in range(len(source))):
        b_value = float(row["b_value"])
        assert row["b_value_present"] and not row["temporal_index_present"]
        assert row["stack_key"].decode() == f"DiffusionBValue={b_value}"
        np.testing.assert_array_equal(row["image"], truth.images[b_value])


def test_cli_stacks_option(dwi, tmp_path):
    _, root = dwi
    source = str(root / "source")
    args = ["build", "generic", "--source", source, "--out", str(tmp_path), "--config", "volume"]
    ok = CliRunner().invoke(main, [*args, "--stacks", "each", "-q"])
    assert ok.exit_code == 0, ok.output
    assert "volume          train 4" in ok.output
    bad = CliRunner().invoke(
        main, ["build", "generic", "--source", source, "--out", str(tmp_path), "--stacks", "all"]
    )
    assert bad.exit_code == 1 and "TrialSpec.stacks: got 'all'" in bad.output


# -- real files ----------------------------------------------------------------------------


def _by_normal(datasets_: list, position, orientation) -> list:
    """Independent oracle: sort planes by their position along the slice normal."""
    normal = np.cross(orientation[:3], orientation[3:])
    return sorted(datasets_, key=lambda item: float(np.dot(position(item), normal)))


def test_ge_4d_series_every_time_point_voxel_exact(realdata):
    paths = sorted(realdata.glob("08_mr_ge_epi_dcm_qa_nih/*.dcm"))
    files = [pydicom.dcmread(p) for p in paths]
    at_position: dict[tuple, list] = {}
    for item in files:
        key = tuple(round(float(v), 3) for v in item.ImagePositionPatient)
        at_position.setdefault(key, []).append(item)
    repeats = {len(v) for v in at_position.values()}
    assert repeats == {10} and len(at_position) == 15
    series = read_stacks(paths)
    assert len(series.stacks) == 10
    orientation = np.array(files[0].ImageOrientationPatient, dtype=float)
    for r in range(10):
        planes = [sorted(v, key=lambda d: int(d.InstanceNumber))[r] for v in at_position.values()]
        planes = _by_normal(
            planes, lambda d: np.array(d.ImagePositionPatient, dtype=float), orientation
        )
        volume = series.volume(r)
        np.testing.assert_array_equal(volume.array, np.stack([d.pixel_array for d in planes]))
        assert volume.sop_instance_uids == tuple(d.SOPInstanceUID for d in planes)
        assert series.stacks[r].descriptors()["echo_time"] == float(files[0].EchoTime)


def _enhanced_oracle(paths: list[Path], key) -> dict[object, np.ndarray]:
    """Frames of enhanced MR files grouped by ``key(per_frame_item)``, each group sorted along
    the normal, rescaled in float64 and stored as float32 (as volumes with a rescale are)."""
    groups: dict[object, list] = {}
    for path in paths:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
        shared = ds.SharedFunctionalGroupsSequence[0]
        for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
            transform = (
                item.PixelValueTransformationSequence[0]
                if "PixelValueTransformationSequence" in item
                else shared.PixelValueTransformationSequence[0]
            )
            orientation = (
                (item if "PlaneOrientationSequence" in item else shared)
                .PlaneOrientationSequence[0]
                .ImageOrientationPatient
            )
            values = pixels[f] * float(transform.RescaleSlope) + float(transform.RescaleIntercept)
            groups.setdefault(key(item), []).append(
                (item.PlanePositionSequence[0].ImagePositionPatient, orientation, values)
            )
    out = {}
    for value, planes in groups.items():
        orientation = np.array(planes[0][1], dtype=float)
        ordered = _by_normal(planes, lambda p: np.array(p[0], dtype=float), orientation)
        out[value] = np.stack([p[2] for p in ordered]).astype(np.float32)
    return out


def test_philips_multi_echo_every_echo_voxel_exact(realdata):
    path = realdata / "09_mr_enhanced_multiframe_dcm_qa_enh/Philips/IM_0027_fMAP.dcm"
    expected = _enhanced_oracle(
        [path], lambda item: float(item.MREchoSequence[0].EffectiveEchoTime)
    )
    series = read_stacks(path)
    echoes = [s.descriptors()["echo_time"] for s in series.stacks]
    assert echoes == sorted(expected) and len(echoes) == 2
    for n, echo in enumerate(echoes):
        np.testing.assert_array_equal(series.volume(n).array, expected[echo])


def test_siemens_temporal_positions_every_stack_voxel_exact(realdata):
    paths = sorted(realdata.glob("09_mr_enhanced_multiframe_dcm_qa_enh/Siemens_XA10/*.dcm"))
    expected = _enhanced_oracle(
        paths, lambda item: int(item.FrameContentSequence[0].TemporalPositionIndex)
    )
    series = read_stacks(paths)
    indices = [s.descriptors()["temporal_index"] for s in series.stacks]
    assert indices == sorted(expected) == [1, 2, 3, 4]
    for n, index in enumerate(indices):
        np.testing.assert_array_equal(series.volume(n).array, expected[index])
