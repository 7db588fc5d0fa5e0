"""The ``slices_2d`` config on the synthetic collection: slices bit-exact, masks, labels, PNG
previews and windows."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

import tcia_trials as tt
from tcia_trials import examples as ex
from tcia_trials import slices
from tcia_trials.hf import encode
from tcia_trials.slices import (
    OUTLINE_RGB,
    Window,
    label_slice,
    lesion_slices,
    slice_examples,
    slice_fields,
    window_for,
)
from tcia_trials.source.lesions import Lesion
from tcia_trials.spec import SLICES_2D_CONFIG, WindowPreset
from tcia_trials.synthetic import generate_collection


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    source = tmp_path_factory.mktemp("slices") / "source"
    generate_collection(source, patients=3, seed=7)
    index = tt.scan(source)
    spec = tt.builder("synthetic_trial")
    links = tt.link_annotations(index, spec.annotation_rules, spec.labels)
    series = [uid for uid in links.by_image if uid in index.series]
    patient = index.series[series[0]].patient_id
    return ex.ExampleContext(
        index=index,
        links=links,
        rules=spec.annotation_rules,
        split=spec.splits.assign,
        labels=spec.labels,
        clinical_rows={patient: {"age": 61, "arm": None}},
        clinical_columns=("age", "arm"),
        image_dtype=ex.image_dtype_for(index, series),
    )


@pytest.fixture(scope="module")
def reads(ctx):
    """series uid -> (volume, annotations, examples, skips) with the default settings."""
    out = {}
    for uid in ctx.annotated_series():
        volume, ann = ex.read_series(ctx, uid)
        keyed, skips = slice_examples(ctx, uid)
        out[uid] = (volume, ann, keyed, skips)
    return out


def _grid(example, name):
    return np.asarray(example[name]).reshape(tuple(example["image_shape"]))


def test_one_example_per_lesion_by_default(reads):
    assert any(ann.lesions for _, ann, _, _ in reads.values())
    for uid, (_, ann, keyed, skips) in reads.items():
        assert not skips
        assert [key for key, _, _ in keyed] == [
            f"{uid}/{lesion.lesion_id}/{example['slice_index']}"
            for lesion, (_, _, example) in zip(ann.lesions, keyed, strict=True)
        ]
        for lesion, (_, _, example) in zip(ann.lesions, keyed, strict=True):
            assert example["lesion_id"] == lesion.lesion_id


def test_fields_match_examples_and_encode(ctx, reads):
    fields = slice_fields(image_dtype=ctx.image_dtype, clinical={"age": "int", "arm": "category"})
    names = [f.name for f in fields]
    assert len(set(names)) == len(names)
    assert next(f for f in fields if f.name == "preview").dtype == "image"
    assert next(f for f in fields if f.name == "image").shape == (None, None)
    patients = set()
    for _, _, keyed, _ in reads.values():
        for _, split, example in keyed:
            assert split in ("train", "validation", "test")
            assert set(example) == set(names)
            patient = example["patient_id"]
            patients.add(patient)
            expected = {"age": 61, "arm": None} if patient in ctx.clinical_rows else None
            assert example["clinical"] == (expected or {"age": None, "arm": None})
            row = encode(fields, example)
            rows, cols = example["image_shape"]
            assert row["image"].shape == row["mask"].shape == row["labels"].shape == (rows * cols,)
            assert row["preview"] == example["preview"]
    assert patients & set(ctx.clinical_rows) and patients - set(ctx.clinical_rows)


def test_slice_is_bit_exact_and_centred_on_the_rounded_seed(ctx, reads):
    seeded = 0
    for uid, (volume, ann, keyed, _) in reads.items():
        direct = tt.read_volume(ctx.index, uid).array
        for lesion, (_, _, example) in zip(ann.lesions, keyed, strict=True):
            k = example["slice_index"]
            image = _grid(example, "image")
            assert image.dtype == np.dtype(ctx.image_dtype)
            np.testing.assert_array_equal(image, direct[k])
            assert tuple(example["image_shape"]) == direct.shape[1:]
            if lesion.seed_voxel is not None:
                assert k == int(np.floor(lesion.seed_voxel[0] + 0.5))
                seeded += 1
            else:  # PET lesions of the synthetic collection: no seed -> largest-area slice
                areas = lesion.mask.sum(axis=(1, 2))
                assert k == int(np.argmax(areas))
            np.testing.assert_array_equal(
                example["slice_origin"], volume.affine[:3, :3] @ [k, 0, 0] + volume.affine[:3, 3]
            )
            np.testing.assert_array_equal(example["pixel_spacing"], volume.spacing[1:])
            np.testing.assert_array_equal(example["direction"], volume.direction)
            assert example["units"] == volume.units
    assert seeded


def test_mask_and_labels(reads):
    for _, (_, ann, keyed, _) in reads.items():
        label_map = ann.label_map
        for number, (lesion, (_, _, example)) in enumerate(zip(ann.lesions, keyed, strict=True)):
            k = example["slice_index"]
            assert example["lesion_index"] == number
            mask = _grid(example, "mask")
            labels = _grid(example, "labels")
            assert mask.dtype == np.uint8 and labels.dtype == np.uint16
            np.testing.assert_array_equal(mask, lesion.mask[k].astype(np.uint8))
            assert mask.any()
            assert (labels[mask == 1] >= 1).all()
            if label_map is not None:  # no overlaps: labels are the series' label map
                np.testing.assert_array_equal(labels, label_map[k])
                np.testing.assert_array_equal(labels == number + 1, mask == 1)


def test_overlapping_labels_lowest_lesion_wins():
    a = np.zeros((2, 4, 4), dtype=bool)
    b = np.zeros((2, 4, 4), dtype=bool)
    a[1, 0:2, 0:2] = True
    b[1, 1:3, 1:3] = True
    labels = label_slice(
        [Lesion("a", "a", mask=a), Lesion("s", "s"), Lesion("b", "b", mask=b)], 1, (4, 4)
    )
    expected = np.zeros((4, 4), dtype=np.uint16)
    expected[1:3, 1:3] = 3
    expected[0:2, 0:2] = 1
    np.testing.assert_array_equal(labels, expected)


def test_png_preview(reads):
    for _, (_, ann, keyed, _) in reads.items():
        for number, (lesion, (_, _, example)) in enumerate(zip(ann.lesions, keyed, strict=True)):
            k = example["slice_index"]
            png = Image.open(io.BytesIO(example["preview"]))
            assert png.format == "PNG" and png.mode == "RGB"
            rows, cols = example["image_shape"]
            assert png.size == (cols, rows)
            rgb = np.asarray(png)
            coloured = ~((rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2]))
            edge = slices.outline(lesion.mask[k])
            assert edge.any()
            assert coloured[edge].all()
            red = (rgb == OUTLINE_RGB).all(axis=2)
            assert red.any()
            # grey elsewhere: the windowed slice, except other outlines and the seed marker
            others = np.zeros(edge.shape, dtype=bool)
            for m, other in enumerate(ann.lesions):
                if m != number:
                    others |= slices.outline(other.mask[k])
            marker = np.zeros(edge.shape, dtype=bool)
            if lesion.seed_voxel is not None:
                j, i = (int(np.floor(v + 0.5)) for v in lesion.seed_voxel[1:])
                r = slices.SEED_MARKER_RADIUS
                marker[max(j - r, 0) : j + r + 1, i] = True
                marker[j, max(i - r, 0) : i + r + 1] = True
                assert (rgb[j, i] == slices.SEED_RGB).all()
            assert not coloured[~(edge | others | marker)].any()
            window = Window(
                example["window_name"], example["window_center"], example["window_width"]
            )
            plain = ~(edge | others | marker)
            grey = slices.windowed(_grid(example, "image"), window)
            np.testing.assert_array_equal(rgb[..., 0][plain], grey[plain])


def test_default_windows(reads):
    modalities = set()
    for _, (volume, _, keyed, _) in reads.items():
        modalities.add(volume.modality)
        for _, _, example in keyed:
            image = _grid(example, "image")
            if volume.modality == "CT":
                assert (example["window_center"], example["window_width"]) == (40.0, 400.0)
            elif volume.modality == "PT":
                high = max(5.0, float(np.percentile(image.astype(np.float64), 99.5)))
                assert example["window_center"] - example["window_width"] / 2 == 0.0
                assert example["window_center"] + example["window_width"] / 2 == pytest.approx(high)
    assert modalities == {"CT", "PT"}


def test_window_for_presets_and_defaults():
    presets = SLICES_2D_CONFIG.window_presets
    ct = np.array([[-1000, 0], [40, 3000]], dtype=np.int16)
    assert window_for("CT", "HU", ct, presets) == Window("soft_tissue", 40.0, 400.0)
    assert window_for("CT", "HU", ct) == Window("default_soft_tissue", 40.0, 400.0)
    lung = WindowPreset("lung", "CT", center=-600.0, width=1500.0)
    assert window_for("CT", "HU", ct, (lung,)) == Window("lung", -600.0, 1500.0)
    pet = np.linspace(0.0, 20.0, 1001, dtype=np.float32).reshape(7, 143)
    assert window_for("PT", "SUVbw", pet, presets) == Window("suv_0_10", 5.0, 10.0)
    window = window_for("PT", "SUVbw", pet)
    assert window.low == 0.0
    assert window.high == pytest.approx(np.percentile(pet.astype(np.float64), 99.5))
    low_pet = pet / 10  # max 2 SUV: the window still reaches 5
    assert window_for("PT", "SUVbw", low_pet) == Window("default_suv", 2.5, 5.0)
    # a fixed PET preset does not apply to PET not in SUVbw: percentiles instead
    raw = pet * 1000
    window = window_for("PT", "BQML", raw, presets)
    assert window.name == "default_percentiles"
    assert window.low == pytest.approx(np.percentile(raw.astype(np.float64), 0.5))
    assert window.high == pytest.approx(np.percentile(raw.astype(np.float64), 99.5))
    mr = np.arange(1000, dtype=np.uint16).reshape(10, 100)
    auto = window_for("MR", "", mr, presets)
    assert auto.name == "auto"
    assert (auto.low, auto.high) == pytest.approx(tuple(np.percentile(mr, (0.5, 99.5))))
    assert window_for("MR", "", mr).name == "default_percentiles"
    flat = window_for("MR", "", np.full((3, 3), 7, dtype=np.uint16))
    assert (flat.center, flat.width) == (7.0, 1.0)
    grey = slices.windowed(np.array([[-1000.0, 40.0, 240.0, np.nan]]), Window("w", 40.0, 400.0))
    np.testing.assert_array_equal(grey, [[0, 128, 255, 0]])


def test_three_slices_per_lesion_are_the_largest(ctx, reads):
    for uid, (_, ann, default, _) in reads.items():
        keyed, skips = slice_examples(ctx, uid, slices_per_lesion=3)
        assert not skips
        by_lesion: dict[str, list[int]] = {}
        for key, _, example in keyed:
            assert key == f"{uid}/{example['lesion_id']}/{example['slice_index']}"
            by_lesion.setdefault(example["lesion_id"], []).append(example["slice_index"])
        for lesion, (_, _, centre) in zip(ann.lesions, default, strict=True):
            chosen = by_lesion[lesion.lesion_id]
            areas = lesion.mask.sum(axis=(1, 2))
            assert len(chosen) == min(3, int((areas > 0).sum()))
            assert chosen == sorted(chosen)
            assert centre["slice_index"] in chosen
            # the centre slice, then the largest areas: no slice left out is larger
            rest = [k for k in chosen if k != centre["slice_index"]]
            left_out = [k for k in np.flatnonzero(areas) if k not in chosen]
            assert min(areas[rest]) >= max(areas[left_out], default=0)
            if areas[centre["slice_index"]] == areas.max():  # the usual case: the 3 largest
                assert sorted(areas[chosen]) == sorted(areas)[-3:]
        every, _ = slice_examples(ctx, uid, slices_per_lesion=None)
        assert len(every) == sum(int(lesion.mask.any(axis=(1, 2)).sum()) for lesion in ann.lesions)


def test_lesion_slices_rules():
    mask = np.zeros((6, 3, 3), dtype=bool)
    mask[1, 1, 1] = True
    mask[2, :2, :2] = True
    mask[3, :, :] = True
    mask[4, :2, :] = True
    assert lesion_slices(Lesion("a", "a", mask=mask), 6) == [3]  # no seed: largest area
    seeded = Lesion("a", "a", mask=mask, seed_voxel=(1.5, 1.0, 1.0))
    assert lesion_slices(seeded, 6) == [2]  # floor(1.5 + 0.5)
    assert lesion_slices(seeded, 6, 3) == [2, 3, 4]
    assert lesion_slices(seeded, 6, 10) == [1, 2, 3, 4]
    assert lesion_slices(seeded, 6, None) == [1, 2, 3, 4]
    outside = Lesion("a", "a", mask=mask, seed_voxel=(9.0, 1.0, 1.0))
    assert lesion_slices(outside, 6) == [3]
    assert lesion_slices(Lesion("a", "a", seed_voxel=(4.4, 0.0, 0.0)), 6, 3) == [4]
    assert lesion_slices(Lesion("a", "a"), 6) is None
    assert lesion_slices(Lesion("a", "a", seed_voxel=(-3.0, 0.0, 0.0)), 6) is None


def test_lesion_without_seed_and_mask_is_skipped(ctx, reads, monkeypatch):
    uid = next(u for u, (_, a, _, _) in reads.items() if a.lesions)
    volume, ann, default, _ = reads[uid]
    ghost = Lesion("GHOST - 1", "GHOST - 1")
    patched = dataclasses.replace(ann, lesions=(*ann.lesions, ghost))
    monkeypatch.setattr(slices, "read_series", lambda _ctx, _uid, _stack=None: (volume, patched))
    keyed, skips = slice_examples(ctx, uid)
    assert len(keyed) == len(default)
    assert skips == [(f"{uid}/GHOST - 1", "no seed point and no mask: no slice")]
