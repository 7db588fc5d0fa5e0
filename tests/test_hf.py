"""HuggingFace output, end to end on the synthetic collection: build -> load_dataset -> compare
with the direct reads (voxels bit-exact, geometry, lesions, clinical values and nulls)."""

from __future__ import annotations

import importlib
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

import tcia_trials as tt
from tcia_trials import hf
from tcia_trials.build import INCOMPLETE, build
from tcia_trials.synthetic import generate_collection
from tcia_trials.verify import verify

CONFIGS = ("volume", "lesions", "lesion_patches", "slices_2d", "clinical")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    source = root / "source"
    truth = json.loads(generate_collection(source, patients=4, seed=7).read_text())
    result = build("synthetic_trial", source, root / "out")
    index = tt.scan(source)
    return result, index, truth, source


def _load(result, config, split=None):
    return datasets.load_dataset(str(result.out), config, split=split)


def test_every_config_is_built_and_loads(built):
    result, *_ = built
    for config in CONFIGS:
        loaded = _load(result, config)
        assert {name: len(part) for name, part in loaded.items()} == result.configs[config]
    assert not result.skipped


def test_volume_examples_equal_direct_reads(built):
    result, index, _, _ = built
    links = tt.link_annotations(index)
    checked = 0
    for split in result.configs["volume"]:
        for example in _load(result, "volume", split).with_format("numpy", dtype=None):
            shape = tuple(example["image_shape"])
            volume = tt.read_volume(index, example["series_uid"])
            image = example["image"].reshape(shape)
            assert image.dtype == np.float32  # CT and PET annotated: float32 holds both exactly
            np.testing.assert_array_equal(image, volume.array)
            np.testing.assert_array_equal(example["affine"], volume.affine)
            np.testing.assert_array_equal(example["spacing"], volume.spacing)
            annotations = tt.read_annotations(
                index, example["series_uid"], volume=volume, links=links
            )
            mask = example["mask"].reshape(shape)
            for bit, (stored, lesion) in enumerate(
                zip(example["lesions"], annotations.lesions, strict=True)
            ):
                assert stored["label"] == lesion.label
                np.testing.assert_array_equal((mask >> bit) & 1, lesion.mask)
                np.testing.assert_allclose(stored["seed_lps"], lesion.seed_lps or np.zeros(0))
                assert stored["volume_ml"] == pytest.approx(lesion.volume_ml)
            assert bool(example["no_findings"]) == annotations.no_findings
            checked += 1
    assert checked == sum(result.configs["volume"].values())


def test_lesion_rows_equal_the_volume_records(built):
    """With the images downloaded, a lesion's row is its record in the volume config: one
    measurement (voxel count, volume, bbox, diameter, seed) of the same lesion."""
    result, _, truth, _ = built
    rows = [row for split in result.configs["lesions"] for row in _load(result, "lesions", split)]
    negatives = [row for row in rows if row["no_findings"]]
    assert len(negatives) == sum(
        s["no_findings"] for p in truth["patients"].values() for s in p["studies"]
    )
    assert all(row["lesion_id"] is None and row["volume_ml"] is None for row in negatives)
    records = {
        (example["series_uid"], lesion["lesion_id"]): lesion
        for split in result.configs["volume"]
        for example in _load(result, "volume", split)
        for lesion in example["lesions"]
    }
    lesion_rows = {
        (row["series_uid"], row["lesion_id"]): row for row in rows if not row["no_findings"]
    }
    assert lesion_rows.keys() == records.keys()
    for key, record in records.items():
        assert {name: lesion_rows[key][name] for name in record} == record
        assert record["voxel_count"] and record["bbox"]


def test_patches_are_crops_around_the_seed(built):
    result, index, _, _ = built
    example = next(iter(_load(result, "lesion_patches", "test").with_format("numpy", dtype=None)))
    shape = tuple(example["patch_shape"])
    example["patch"] = example["patch"].reshape(shape)
    example["patch_mask"] = example["patch_mask"].reshape(shape)
    volume = tt.read_volume(index, example["series_uid"])
    k, j, i = (int(v) for v in example["patch_start"])
    k0, j0, i0, k1, j1, i1 = (int(v) for v in example["valid_box"])
    np.testing.assert_array_equal(
        example["patch"][k0:k1, j0:j1, i0:i1],
        volume.array[k + k0 : k + k1, j + j0 : j + j1, i + i0 : i + i1],
    )
    assert (example["patch"][:k0] == example["pad_value"]).all()
    centre = np.array(example["patch"].shape) // 2
    assert example["patch_mask"][tuple(centre)] == 1  # the seed is inside its lesion
    np.testing.assert_allclose(
        example["patch_origin"],
        tt.Volume.affine.fget(volume)[:3, :3] @ [k, j, i] + volume.affine[:3, 3],
    )


def test_clinical_values_and_nulls(built):
    result, _, truth, source = built
    table = tt_clinical(source, truth)
    rows = [row for split in result.configs["clinical"] for row in _load(result, "clinical", split)]
    assert {row["patient_id"] for row in rows} == set(table.rows)
    for row in rows:
        assert row["clinical"] == table.rows[row["patient_id"]]
    assert any(v is None for row in rows for v in row["clinical"].values())  # blanks stay null


def tt_clinical(source: Path, truth: dict):
    from tcia_trials.source.clinical import read_clinical_table

    return read_clinical_table(
        source / truth["clinical"]["csv"],
        patient_column=truth["clinical"]["key"],
        types=tt.builder("synthetic_trial").clinical.column_types,
    )


def test_splits_are_disjoint_by_patient_and_agree_across_configs(built):
    result, *_ = built
    split_of: dict[str, str] = {}
    for config in CONFIGS:
        for split in result.configs[config]:
            for patient in _load(result, config, split)["patient_id"]:
                assert split_of.setdefault(patient, split) == split


def test_card_yaml_is_valid_for_the_hub(built):
    from huggingface_hub import DatasetCard

    result, *_ = built
    card = DatasetCard.load(result.out / "README.md")
    data = card.data.to_dict()
    assert {c["config_name"] for c in data["configs"]} == set(CONFIGS)
    for info in data["dataset_info"]:
        features = datasets.Features._from_yaml_list(info["features"])
        loaded = _load(result, info["config_name"], split="train")
        assert loaded.features == features
    assert data["license"] == "apache-2.0"
    assert "| `age` | int | declared |" in card.text  # the clinical schema is recorded in the card


def test_rebuild_gives_identical_shards(built, tmp_path):
    result, _, _, source = built
    again = build("synthetic_trial", source, tmp_path, config=("volume", "lesions"))
    for config in ("volume", "lesions"):
        first = json.loads(
            (result.out / ".tcia_trials" / "configs" / f"{config}.json").read_text()
        )["checksums"]
        second = json.loads(
            (again.out / ".tcia_trials" / "configs" / f"{config}.json").read_text()
        )["checksums"]
        assert first == second


def test_streaming_and_a_fresh_environment_without_tcia_trials(built):
    result, *_ = built
    streamed = next(
        iter(
            datasets.load_dataset(str(result.out), "lesion_patches", split="train", streaming=True)
        )
    )
    loaded = _load(result, "lesion_patches", "train")[0]
    assert streamed["lesion_id"] == loaded["lesion_id"]
    np.testing.assert_array_equal(np.array(streamed["patch"]), np.array(loaded["patch"]))
    script = (
        "import sys; sys.modules['tcia_trials'] = None\n"
        "import datasets\n"
        f"ds = datasets.load_dataset({str(result.out)!r}, 'volume', split='train')\n"
        "ex = ds.with_format('numpy', dtype=None)[0]\n"
        "print(ex['image'].reshape(ex['image_shape']).shape, ex['affine'].shape)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert "(4, 4)" in run.stdout


def test_unknown_config_and_empty_source_are_clear(tmp_path):
    with pytest.raises(ValueError, match="has no config 'nope'"):
        build("synthetic_trial", tmp_path, tmp_path / "out", config="nope")
    with pytest.raises(tt.TciaTrialsError, match="is not a folder"):
        build("synthetic_trial", tmp_path / "missing", tmp_path / "out")


def test_arrow_layout_and_parallel_build_match(built, tmp_path):
    result, _, _, source = built
    parallel = build(
        "synthetic_trial",
        source,
        tmp_path,
        formats=("hf", "arrow"),
        config="lesion_patches",
        num_proc=2,
    )
    first = json.loads(
        (result.out / ".tcia_trials" / "configs" / "lesion_patches.json").read_text()
    )["checksums"]
    second = json.loads(
        (parallel.out / ".tcia_trials" / "configs" / "lesion_patches.json").read_text()
    )["checksums"]
    assert first == second  # two worker processes write the same bytes
    on_disk = datasets.load_from_disk(str(parallel.out / "arrow" / "lesion_patches"))
    loaded = _load(result, "lesion_patches")
    for split in loaded:
        assert on_disk[split]["lesion_id"] == loaded[split]["lesion_id"]
        np.testing.assert_array_equal(
            on_disk[split].with_format("numpy")["patch"],
            loaded[split].with_format("numpy")["patch"],
        )


def test_label_spec_excludes_series_and_counts_them(built):
    from tcia_trials.spec import LabelSpec

    _, index, _, _ = built
    links = tt.link_annotations(index, labels=LabelSpec(modalities=("RTSTRUCT", "SEG")))
    assert links.excluded and all("not a label series" in why for why in links.excluded.values())
    assert all(index.series[uid].modality == "SR" for uid in links.excluded)
    linked = {uid for uids in links.by_image.values() for uid in uids}
    assert not linked & set(links.excluded)


def test_cli_build_and_its_errors(built, tmp_path):
    from click.testing import CliRunner

    from tcia_trials.cli import main

    _, _, _, source = built
    runner = CliRunner()
    ok = runner.invoke(
        main,
        [
            "build",
            "synthetic_trial",
            "--source",
            str(source),
            "--out",
            str(tmp_path),
            "--config",
            "lesions",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "lesions" in ok.output and "synthetic_trial 1.1.0" in ok.output
    wrong = runner.invoke(main, ["build", "eay13", "--source", str(source), "--out", str(tmp_path)])
    assert wrong.exit_code == 1 and "did you mean 'eay131'" in wrong.output
    missing = runner.invoke(
        main,
        ["build", "synthetic_trial", "--source", str(tmp_path / "nope"), "--out", str(tmp_path)],
    )
    assert missing.exit_code == 1 and "is not a folder" in missing.output


def test_generic_builder_with_its_own_name_and_clinical_sheet(built, tmp_path):
    _, _, truth, source = built
    result = build(
        "generic",
        source,
        tmp_path,
        config=("lesions", "clinical"),
        dataset_name="my_trial",
        clinical=source / truth["clinical"]["xlsx"],
        patient_column=truth["clinical"]["key"],
    )
    assert result.out == tmp_path / "my_trial"
    assert "my_trial (Generic labeled DICOM download)" in (result.out / "README.md").read_text()
    rows = [row for split in result.configs["clinical"] for row in _load(result, "clinical", split)]
    assert {"age", "sex", "pfs_days"} <= set(rows[0]["clinical"])  # types inferred from the sheet
    with pytest.raises(ValueError, match="dataset_name"):
        build("generic", source, tmp_path, dataset_name="../escape")


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _interrupt_after(calls: int):
    """A ``ConfigWriter.add`` that raises KeyboardInterrupt (Ctrl-C) on its ``calls + 1``-th call."""
    count = itertools.count()
    add = hf.ConfigWriter.add

    def interrupted(self, split, example):
        if next(count) == calls:
            raise KeyboardInterrupt
        add(self, split, example)

    return interrupted


def test_an_interrupted_build_leaves_the_previous_build_or_nothing(built, tmp_path, monkeypatch):
    result, _, _, source = built
    previous = shutil.copytree(result.out, tmp_path / "out" / result.out.name)
    before = _files(previous)
    monkeypatch.setattr(hf.ConfigWriter, "add", _interrupt_after(5))
    with pytest.raises(KeyboardInterrupt):
        build("synthetic_trial", source, tmp_path / "out")
    assert _files(previous) == before  # no staging folder left, nothing replaced
    assert verify(previous, check_source=False).ok
    monkeypatch.setattr(hf.ConfigWriter, "add", _interrupt_after(5))
    with pytest.raises(KeyboardInterrupt):
        build("synthetic_trial", source, tmp_path / "new" / "out")
    assert not (tmp_path / "new").exists()  # a first build leaves no folder


def test_an_interrupted_commit_is_marked_incomplete(built, tmp_path, monkeypatch):
    result, _, _, source = built
    previous = shutil.copytree(result.out, tmp_path / result.out.name)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("tcia_trials.build"), "_write_card", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build("synthetic_trial", source, tmp_path, config="lesions")
    assert (previous / INCOMPLETE).exists() and not (previous / "README.md").exists()
    errors = verify(previous, check_source=False).errors
    assert any("a build was interrupted here" in e for e in errors)
    assert any("README.md: missing" in e for e in errors)
