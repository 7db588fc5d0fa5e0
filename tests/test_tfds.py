"""TFDS output, end to end on the synthetic collection: registration, both file formats,
``tfds.load`` / ``as_data_source`` round trips, and content parity with the HuggingFace output
(voxels bit-exact, geometry, lesions, clinical values; nulls <-> sentinels + presence flags)."""

from __future__ import annotations

import dataclasses
import io
import math
import shutil
from typing import ClassVar

import datasets
import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

import tcia_trials  # noqa: E402  (registers the TFDS builders)
from tcia_trials import tfds as ttfds  # noqa: E402
from tcia_trials.build import build  # noqa: E402
from tcia_trials.errors import StrictBuildError, TciaTrialsError  # noqa: E402
from tcia_trials.prepare import prepare  # noqa: E402
from tcia_trials.registry import builder as spec_of  # noqa: E402
from tcia_trials.schema import Field, config_fields  # noqa: E402
from tcia_trials.synthetic import generate_collection  # noqa: E402
from tcia_trials.tfds_arrays import array_source  # noqa: E402

CONFIGS = ("volume", "lesions", "lesion_patches", "slices_2d", "clinical")
#: How examples of a config are matched between the two formats.
MATCH = {
    "volume": ("series_uid",),
    "lesions": ("series_uid", "lesion_id"),
    "lesion_patches": ("series_uid", "lesion_id"),
    "slices_2d": ("series_uid", "lesion_id", "slice_index"),
    "clinical": ("patient_id",),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One source built by ``tt.build`` in both formats (TFDS as array_record), and its
    ``volume`` and ``lesion_patches`` as TFRecord."""
    root = tmp_path_factory.mktemp("tfds")
    source = root / "source"
    generate_collection(source, patients=3, seed=11)
    hf = build(
        "synthetic_trial",
        source,
        root / "array_record",
        formats=("hf", "tfds"),
        tfds_file_format="array_record",
    )
    prepared = prepare(spec_of("synthetic_trial"), source)
    ttfds.write_tfds(
        prepared, ("volume", "lesion_patches"), root / "tfrecord", file_format="tfrecord"
    )
    return hf, prepared, hf.tfds, root


def _hf_rows(hf, config, numpy=False):
    """Rows per split; python format by default (the numpy format turns nulls into NaN)."""
    loaded = datasets.load_dataset(str(hf.out), config)
    return {
        split: list(part.with_format("numpy", dtype=None) if numpy else part)
        for split, part in loaded.items()
    }


def _key(example, config):
    return tuple(
        _text(example[name]) if name != "slice_index" else int(example[name])
        for name in MATCH[config]
    )


def _text(value):
    """A string value of either format (a null string is TFDS's sentinel "")."""
    if value is None:
        return ttfds.SENTINELS["string"]
    return value.decode() if isinstance(value, bytes) else str(value)


def _assert_same(field: Field, hf_value, tf_value, where: str, tf_record) -> None:
    """One neutral field: the HF value (null allowed) against its TFDS encoding."""
    if field.nullable and hf_value is None:
        assert not tf_record[field.name + ttfds.PRESENT], where
        expected = ttfds.sentinel(field)
        if isinstance(expected, float):
            assert math.isnan(tf_value), where
        else:
            assert _plain(tf_value) == expected, where
        return
    if field.nullable:
        assert tf_record[field.name + ttfds.PRESENT], where
    if field.length is not None:
        assert bool(tf_record[field.name + ttfds.PRESENT]) == (len(hf_value) > 0), where
        if not len(hf_value):
            expected = np.full(field.length, ttfds.sentinel(field), dtype=tf_value.dtype)
            np.testing.assert_array_equal(tf_value, expected, err_msg=where)
            return
    if field.is_records:
        hf_items = list(hf_value)
        tf_items = _unstack(tf_value, len(hf_items))
        for n, (hf_item, tf_item) in enumerate(zip(hf_items, tf_items, strict=True)):
            for sub in field.fields:
                _assert_same(
                    sub, hf_item[sub.name], tf_item[sub.name], f"{where}[{n}].{sub.name}", tf_item
                )
        return
    if field.is_record:
        for sub in field.fields:
            _assert_same(
                sub, hf_value[sub.name], tf_value[sub.name], f"{where}.{sub.name}", tf_value
            )
        return
    if field.dtype == "image":
        np.testing.assert_array_equal(np.asarray(hf_value.convert("RGB")), tf_value, err_msg=where)
        return
    if field.dtype == "string":
        if field.is_list:
            assert [_text(v) for v in hf_value] == [_text(v) for v in tf_value], where
        else:
            assert _text(hf_value) == _text(tf_value), where
        return
    hf_array = np.asarray(hf_value, dtype=field.dtype)
    tf_array = np.asarray(tf_value).view(field.dtype)  # uint32 bits are stored as int32
    if (field.shape and tf_array.ndim > 1) or field.is_fixed_tensor:
        hf_array = hf_array.reshape(tf_array.shape)
    assert hf_array.dtype == tf_array.dtype and hf_array.size == tf_array.size, where
    np.testing.assert_array_equal(hf_array, tf_array, err_msg=where)


def _plain(value):
    value = value.item() if hasattr(value, "item") else value
    return value.decode() if isinstance(value, bytes) else value


def _unstack(record_of_lists, count):
    """TFDS returns a Sequence of records as a record of lists; back to a list of records."""
    return [{name: values[n] for name, values in record_of_lists.items()} for n in range(count)]


def _tfds_rows(root, config, split):
    builder = tfds.builder(f"synthetic_trial/{config}", data_dir=str(root / "array_record"))
    source = builder.as_data_source(split=split)
    return [source[n] for n in range(len(source))]


@pytest.mark.parametrize("config", CONFIGS)
def test_tfds_examples_equal_hf_examples(built, config):
    hf, prepared, counts, root = built
    fields = prepared.fields(config)
    hf_rows = _hf_rows(hf, config)
    assert counts[config] == {split: len(rows) for split, rows in hf_rows.items()}
    for split, rows in hf_rows.items():
        by_key = {_key(row, config): row for row in rows}
        tf_rows = _tfds_rows(root, config, split)
        assert sorted(by_key) == sorted(_key(row, config) for row in tf_rows)
        for tf_row in tf_rows:
            key = _key(tf_row, config)
            hf_row = by_key[key]
            for field in fields:
                _assert_same(
                    field,
                    hf_row[field.name],
                    tf_row[field.name],
                    f"{config}{key}.{field.name}",
                    tf_row,
                )


def test_splits_hold_the_same_patients_as_hf(built):
    hf, _, _, root = built
    for config in ("volume", "clinical"):
        for split, rows in _hf_rows(hf, config).items():
            patients = {_text(r["patient_id"]) for r in _tfds_rows(root, config, split)}
            assert patients == {_text(r["patient_id"]) for r in rows}


def test_tfds_load_reads_tfrecord_volumes_bit_exact(built):
    hf, _, _, root = built
    hf_rows = {
        r["series_uid"]: r for rows in _hf_rows(hf, "volume", numpy=True).values() for r in rows
    }
    seen = 0
    for split in hf.configs["volume"]:
        ds = tfds.load("synthetic_trial/volume", split=split, data_dir=str(root / "tfrecord"))
        for example in tfds.as_numpy(ds):
            expected = hf_rows[example["series_uid"].decode()]
            image = expected["image"].reshape(expected["image_shape"])
            assert example["image"].dtype == image.dtype
            np.testing.assert_array_equal(example["image"], image)
            mask = example["mask"].view(np.uint32)  # uint32 bits stored as int32
            np.testing.assert_array_equal(mask, expected["mask"].reshape(image.shape))
            np.testing.assert_array_equal(example["affine"], expected["affine"])
            seen += 1
    assert seen == sum(hf.configs["volume"].values())


def test_supervised_tfrecord_patches(built):
    _, _, counts, root = built
    ds = tfds.load(
        "synthetic_trial/lesion_patches",
        split="test",
        data_dir=str(root / "tfrecord"),
        as_supervised=True,
    )
    pairs = list(tfds.as_numpy(ds))
    assert len(pairs) == counts["lesion_patches"]["test"]
    for patch, mask in pairs:
        assert patch.shape == mask.shape == (32, 64, 64)
        assert mask.dtype == np.uint8 and mask.any()


def test_builders_are_registered_and_described(built):
    *_, root = built
    registered = set(tfds.list_builders(with_community_datasets=False))
    assert set(tcia_trials.list_builders()) <= registered
    builder = tfds.builder("eay131/lesion_patches", data_dir=str(root / "none"))
    spec = spec_of("eay131")
    assert str(builder.version) == spec.version
    instructions = builder.MANUAL_DOWNLOAD_INSTRUCTIONS
    assert instructions.startswith(spec.manual_download_instructions.rstrip())
    assert 'DownloadConfig(manual_dir="~/TCIA/EAY131")' in instructions
    assert builder.info.citation == spec.citation
    assert builder.info.supervised_keys == ("patch", "patch_mask")
    assert builder.info.features["patch"].shape == (32, 64, 64)
    assert builder.info.features["patch"].np_dtype == np.float32  # CT, MR, PT: float32
    ct_only = dataclasses.replace(spec, modalities=("CT",))
    assert ttfds.static_image_dtype(ct_only) == "int16"  # HU
    assert set(builder.builder_configs) <= set(CONFIGS)


def test_builder_from_directory_restores_the_built_features(built):
    _, prepared, counts, root = built
    path = root / "array_record" / "synthetic_trial" / "volume" / prepared.spec.version
    restored = tfds.builder_from_directory(str(path))
    assert restored.info.features["image"].np_dtype == np.float32
    assert {n: s.num_examples for n, s in restored.info.splits.items()} == counts["volume"]
    assert "clinical" in restored.info.features


def test_nullable_fields_get_sentinels_and_presence_flags():
    fields = (
        Field("age", "int64", nullable=True),
        Field("size", "float64", nullable=True),
        Field("site", "string", nullable=True),
        Field("flag", "bool", nullable=True),
    )
    features = ttfds.tfds_features(fields)
    assert {"age_present", "size_present", "site_present", "flag_present"} <= set(features)
    missing = ttfds.encode(fields, {"age": None, "size": None, "site": None, "flag": None})
    assert missing["age"] == -1 and math.isnan(missing["size"])
    assert missing["site"] == "" and missing["flag"] is False
    assert not any(missing[f"{f.name}_present"] for f in fields)
    present = ttfds.encode(fields, {"age": 0, "size": 0.0, "site": "", "flag": False})
    assert all(present[f"{f.name}_present"] for f in fields)
    features.encode_example(missing)  # TFDS accepts both
    features.encode_example(present)


def test_unsigned_masks_keep_their_bits():
    field = Field("mask", "uint32", (None, None, None))
    assert ttfds.tfds_feature(field).np_dtype == np.int32
    mask = np.array([[[2**31 + 5, 4]]], dtype=np.uint32)
    encoded = ttfds.encode((field,), {"mask": mask})["mask"]
    assert encoded.dtype == np.int32
    np.testing.assert_array_equal(encoded.view(np.uint32), mask)
    for bit in (0, 2, 31):  # the bit planes read the same from the signed view
        np.testing.assert_array_equal((encoded >> bit) & 1, (mask >> bit) & 1)


def test_feature_names_with_a_slash_are_refused():
    with pytest.raises(TciaTrialsError, match="'dose/kg'"):
        ttfds.tfds_features((Field("dose/kg", "float64"),))


def test_tfrecord_without_tensorflow_names_the_extra(monkeypatch, built, tmp_path):
    *_, root = built
    real_find_spec = ttfds.importlib.util.find_spec
    monkeypatch.setattr(
        ttfds.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorflow" else real_find_spec(name, *a),
    )
    manual = tfds.download.DownloadConfig(manual_dir=str(root / "source"))
    builder = tfds.builder("synthetic_trial/clinical", data_dir=str(tmp_path / "tfrecord"))
    with pytest.raises(TciaTrialsError, match=r"tcia-trials\[tf\]"):
        builder.download_and_prepare(download_config=manual)
    reading = tfds.builder("synthetic_trial/volume", data_dir=str(root / "array_record"))
    assert len(reading.as_data_source(split="test")) > 0  # array_record: no TensorFlow needed


def test_a_rebuild_regenerates_the_tfds_data(built, tmp_path):
    *_, root = built
    prepared = prepare(spec_of("synthetic_trial"), root / "source")
    first = ttfds.write_tfds(prepared, ("clinical",), tmp_path, file_format="array_record")
    smaller = tmp_path / "smaller"
    generate_collection(smaller, patients=1, seed=11)
    again = prepare(spec_of("synthetic_trial"), smaller)
    second = ttfds.write_tfds(again, ("clinical",), tmp_path, file_format="array_record")
    assert sum(second["clinical"].values()) < sum(first["clinical"].values())


def test_png_previews_are_stored_as_they_are(built):
    *_, root = built
    row = _tfds_rows(root, "slices_2d", "test")[0]
    assert row["preview"].ndim == 3 and row["preview"].shape[2] == 3
    assert isinstance(
        ttfds.encode((Field("preview", "image"),), {"preview": b"x"})["preview"], io.BytesIO
    )


class SyntheticTrialTest(tfds.testing.DatasetBuilderTestCase):
    """TFDS's own harness for dataset builders, with dummy data made by the generator."""

    DATASET_CLASS = ttfds.builder_class(spec_of("synthetic_trial"))
    BUILDER_CONFIG_NAMES_TO_TEST: ClassVar[list[str]] = ["lesions", "clinical"]
    SKIP_CHECKSUMS = True

    @classmethod
    def setUpClass(cls):
        import tempfile
        from collections import Counter
        from pathlib import Path

        from tcia_trials import examples

        cls._dummy = tempfile.TemporaryDirectory()
        source = Path(cls._dummy.name) / "dummy_data"
        generate_collection(source, patients=3, seed=11)
        cls.EXAMPLE_DIR = str(source)
        ctx = prepare(spec_of("synthetic_trial"), source).ctx
        cls.EXPECTED = {
            "lesions": Counter(
                split for _, (_, split, _) in examples.iter_examples(ctx, ("lesions",))
            ),
            "clinical": Counter(ctx.split(p) for p in ctx.clinical_rows),
        }
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls._dummy.cleanup()

    def _download_and_prepare_as_dataset(self, builder):
        self.SPLITS = dict(self.EXPECTED[builder.builder_config.name])  # rows differ per config
        super()._download_and_prepare_as_dataset(builder)


def test_tfds_only_build_reports_and_strict_leaves_nothing(built, tmp_path):
    *_, root = built
    source = root / "source"
    result = build(
        "synthetic_trial",
        source,
        tmp_path / "out",
        formats=("tfds",),
        config="lesions",
        tfds_file_format="array_record",
    )
    assert result.configs == result.tfds and (result.out / "report.json").is_file()
    assert not (result.out / "data").exists()  # no HuggingFace output asked for
    broken = tmp_path / "broken"
    shutil.copytree(source, broken)
    next(broken.rglob("*.dcm")).write_bytes(b"not DICOM")
    with pytest.raises(StrictBuildError):
        build(
            "synthetic_trial",
            broken,
            tmp_path / "strict",
            formats=("tfds",),
            config="lesions",
            tfds_file_format="array_record",
            strict=True,
        )
    assert not (tmp_path / "strict").exists()


def test_verify_checks_the_tfds_datasets_beside_the_hf_one(built, tmp_path):
    hf, *_ = built
    assert tcia_trials.verify(hf.out, check_source=False).ok
    copy = tmp_path / hf.out.name
    shutil.copytree(hf.out, copy)
    next((copy / "lesions").rglob("*-test.array_record-*")).unlink()
    result = tcia_trials.verify(copy, check_source=False)
    assert any("TFDS shard missing" in error for error in result.errors)


def test_beam_generation_equals_the_local_one(built, tmp_path):
    beam = pytest.importorskip("apache_beam")
    _, prepared, counts, root = built
    cls = ttfds.builder_class(prepared.spec)
    config = "lesion_patches"
    builder = cls(
        config=config,
        data_dir=str(tmp_path),
        file_format="array_record",
        source=root / "source",
        image_dtype=prepared.ctx.image_dtype,
    )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            beam_runner=beam.runners.DirectRunner(),
            beam_options=beam.options.pipeline_options.PipelineOptions(["--direct_num_workers=1"]),
        )
    )
    assert {n: s.num_examples for n, s in builder.info.splits.items()} == counts[config]
    local = tfds.builder(f"synthetic_trial/{config}", data_dir=str(root / "array_record"))
    fields = prepared.fields(config)
    for split in counts[config]:
        beam_rows = {_key(r, config): r for r in _all(builder.as_data_source(split=split))}
        local_rows = {_key(r, config): r for r in _all(local.as_data_source(split=split))}
        assert beam_rows.keys() == local_rows.keys()
        for key, row in beam_rows.items():
            for field in fields:
                if field.is_records or field.is_record:
                    continue  # compared through the HF parity test
                a, b = np.asarray(row[field.name]), np.asarray(local_rows[key][field.name])
                assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def _all(source):
    return [source[n] for n in range(len(source))]


def test_cli_builds_tfds_and_names_unknown_formats(built, tmp_path):
    from click.testing import CliRunner

    from tcia_trials.cli import main

    *_, root = built
    args = ["build", "synthetic_trial", "--source", str(root / "source"), "--out", str(tmp_path)]
    ran = CliRunner().invoke(
        main,
        [
            *args,
            "--format",
            "tfds",
            "--tfds-file-format",
            "array_record",
            "--config",
            "clinical",
            "-q",
        ],
    )
    assert ran.exit_code == 0, ran.output
    assert "tfds (array_record)" in ran.output
    assert (tmp_path / "synthetic_trial" / "clinical" / "1.1.0" / "dataset_info.json").is_file()
    wrong = CliRunner().invoke(main, [*args, "--format", "tfrecords"])
    assert wrong.exit_code == 1 and "unknown output format(s) ['tfrecords']" in wrong.output


def _same_value(expected, actual, where: str) -> None:
    assert type(actual) is type(expected), where
    if isinstance(expected, np.ndarray):
        assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), where
        np.testing.assert_array_equal(actual, expected, err_msg=where)
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(actual), where
    else:
        assert actual == expected, where


@pytest.mark.parametrize("config", ["volume", "lesion_patches", "slices_2d", "clinical"])
def test_array_source_equals_as_data_source(built, config):
    builder = tfds.builder(f"synthetic_trial/{config}", data_dir=str(built[3] / "array_record"))
    names = [n for n, f in builder.info.features.items() if isinstance(f, tfds.features.Tensor)]
    for split in builder.info.splits:
        full = builder.as_data_source(split=split)
        fast = array_source(builder, split, names)
        assert len(fast) == len(full) > 0
        batch = fast.__getitems__(range(len(fast)))
        for n in range(len(full)):
            for name in names:
                for got in (fast[n], batch[n]):
                    _same_value(full[n][name], got[name], f"{config} {split}[{n}] {name}")


def test_array_source_reads_the_supervised_pair_by_default(built):
    data_dir = str(built[3] / "array_record")
    source = array_source("synthetic_trial/lesion_patches", "test", data_dir=data_dir)
    example = source[len(source) - 1]
    assert set(example) == {"patch", "patch_mask"}
    assert example["patch"].shape == example["patch_mask"].shape
    assert example["patch_mask"].max() == 1  # the lesion is in its patch


def test_array_source_refuses_lists_and_unknown_features(built):
    data_dir = str(built[3] / "array_record")
    for name in ("lesions", "no_such_feature"):
        with pytest.raises(TciaTrialsError, match=f"{name}.*as_data_source.*image_shape"):
            array_source("synthetic_trial/volume", "test", [name], data_dir=data_dir)


def test_volume_masks_are_compressed_and_patch_masks_raw():
    """Chosen by measurement (README): zlib shrinks sparse volume masks ~950x in TFRecord;
    inflating a patch mask costs more than reading it raw."""
    fields = ttfds.tfds_features(
        config_fields("lesion_patches", image_dtype="float32", patch_shape=(4, 8, 8), clinical={})
    )
    volume = ttfds.tfds_features(
        config_fields("volume", image_dtype="int16", patch_shape=(4, 8, 8), clinical={})
    )
    encodings = {
        name: feature.to_json_content().encoding
        for name, feature in (
            ("patch", fields["patch"]),
            ("patch_mask", fields["patch_mask"]),
            ("image", volume["image"]),
            ("mask", volume["mask"]),
        )
    }
    assert encodings == {"patch": "bytes", "patch_mask": "bytes", "image": "bytes", "mask": "zlib"}
