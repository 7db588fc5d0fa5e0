"""``tt.verify`` / ``tcia-trials verify``: a fresh build passes; a changed, missing or foreign
shard, a changed schema and a changed or foreign source are each named."""

from __future__ import annotations

import json
import shutil

import pydicom
import pytest
from click.testing import CliRunner

import tcia_trials as tt
from tcia_trials.build import build
from tcia_trials.cli import main
from tcia_trials.errors import BuiltDatasetError
from tcia_trials.synthetic import generate_collection


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    source = root / "source"
    generate_collection(source, patients=2, seed=5)
    result = build("synthetic_trial", source, root / "out", config=("volume", "lesions"))
    return result.out, source


@pytest.fixture
def dataset(built, tmp_path):
    """A copy of the built dataset to damage (its records still name the source)."""
    out, _ = built
    return shutil.copytree(out, tmp_path / out.name)


def _shards(folder, config):
    return sorted((folder / "data" / config).glob("*.parquet"))


def test_a_fresh_build_verifies(built):
    out, source = built
    result = tt.verify(out)
    assert result.ok, result.errors
    assert any(line.startswith("volume: ") for line in result.checked)
    assert any(f"re-read from {source}" in line for line in result.checked)
    run = CliRunner().invoke(main, ["verify", str(out)])
    assert run.exit_code == 0, run.output
    assert run.output.rstrip().endswith(f"{out}: verified")


def test_a_changed_byte_is_a_checksum_mismatch(dataset):
    shard = _shards(dataset, "lesions")[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = tt.verify(dataset, check_source=False)
    assert not result.ok
    assert any(str(shard) in e and "sha256" in e for e in result.errors)
    run = CliRunner().invoke(main, ["verify", str(dataset), "--no-source"])
    assert run.exit_code == 1
    assert f"FAIL  {shard}: sha256" in run.output and "problem(s) found" in run.output


def test_a_missing_or_unlisted_shard_is_an_error(dataset):
    shard = _shards(dataset, "volume")[0]
    shard.rename(shard.with_name("extra.parquet"))
    errors = tt.verify(dataset, check_source=False).errors
    assert any(str(shard) in e and "missing" in e for e in errors)
    assert any(
        str(shard.with_name("extra.parquet")) in e and "not in the build record" in e
        for e in errors
    )
    split = shard.name.split("-")[0]
    assert any(f"split {split} holds" in e for e in errors)


def test_a_schema_that_differs_from_the_record_is_named(dataset):
    record_path = dataset / ".tcia_trials" / "configs" / "lesions.json"
    record = json.loads(record_path.read_text())
    record["features"]["voxel_count"]["dtype"] = "int32"
    record_path.write_text(json.dumps(record))
    errors = tt.verify(dataset, check_source=False).errors
    assert errors and all("column voxel_count: int64 instead of int32" in e for e in errors)


def test_a_changed_source_is_a_sample_mismatch(built, tmp_path):
    out, source = built
    changed = shutil.copytree(source, tmp_path / "source")
    index = tt.scan(changed)
    for series in index.series.values():
        if series.modality in ("CT", "PT"):  # one voxel of every image series
            ds = pydicom.dcmread(series.paths[0])
            pixels = ds.pixel_array.copy()
            pixels[0, 0] += 1
            ds.PixelData = pixels.tobytes()
            ds.save_as(series.paths[0])
    errors = tt.verify(out, source=changed).errors
    assert len(errors) == 3  # the sample: three volume examples
    assert all(
        "volume example" in e and "image: 1 voxel(s) differ from the source" in e for e in errors
    )
    run = CliRunner().invoke(main, ["verify", str(out), "--source", str(changed)])
    assert run.exit_code == 1 and "image: 1 voxel(s) differ" in run.output


def test_another_source_or_none(built, tmp_path):
    out, _ = built
    other = tmp_path / "other"
    generate_collection(other, patients=1, seed=6)
    errors = tt.verify(out, source=other).errors
    assert errors and all(f"the series is not in the source {other}" in e for e in errors)
    gone = tt.verify(out, source=tmp_path / "gone")
    assert gone.ok and any("is gone" in note for note in gone.notes)
    run = CliRunner().invoke(main, ["verify", str(out), "--no-source"])
    assert run.exit_code == 0 and "note  the examples were not compared" in run.output


def test_not_a_dataset_folder_points_to_the_one_inside(built):
    out, _ = built
    with pytest.raises(BuiltDatasetError, match=f"the dataset folders inside it: {out}"):
        tt.verify(out.parent)
    run = CliRunner().invoke(main, ["verify", str(out.parent)])
    assert run.exit_code == 1 and "not a dataset built by tcia-trials" in run.output
