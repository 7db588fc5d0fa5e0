"""TID 1500 measurements as real writers produce them: UCUM units, derivations, TID 1501 groups,
segment references, and no measurement value lost on the way to lesions.

SRs are written here with highdicom the way dcmqi, highdicom, PixelMed and OHIF write them;
expected values come from the numbers written and plain arithmetic (1 mL = 1000 mm3 = 1 cm3,
1 cm = 10 mm), and measurement counts from an independent pydicom walk of the content tree.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from tcia_trials import read_annotation_file
from tcia_trials.source.sr import SrMeasurement, keyed_values, read_sr

HIGHDICOM = "05_sr_tid1500_highdicom"
SEG_UID = "1.2.826.0.1.3680043.8.498.111"
SUV = hd.sr.CodedConcept("{SUVbw}g/ml", "UCUM", "Standardized Uptake Value body weight")
SUVBW = hd.sr.CodedConcept("126401", "DCM", "SUVbw")
LONG_AXIS = hd.sr.CodedConcept("103339001", "SCT", "Long Axis")
VOLUME = codes.SCT.Volume
#: SCOORD3D data (LPS mm) of two TID 1501 groups.
POINTS_3D = {
    "POINT": [[-10.5, 20.25, -300.0]],
    "POLYLINE": [[0.0, 0.0, -300.0], [9.0, 0.0, -296.0]],
}


def _unit(code: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(code, "UCUM", code)


def _measure(name, value: float, unit: str, derivation=None, coordinates=None) -> hd.sr.Measurement:
    return hd.sr.Measurement(
        name=name,
        value=value,
        unit=_unit(unit) if isinstance(unit, str) else unit,
        derivation=derivation,
        referenced_coordinates=coordinates,
    )


def _tracking(name: str) -> hd.sr.TrackingIdentifier:
    return hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=name)


# --------------------------------------------------------------------------- oracles


def _code(item: Dataset) -> tuple[str, str]:
    c = item.ConceptNameCodeSequence[0]
    return str(c.CodeValue), str(c.CodingSchemeDesignator)


def _valued_numbers(items, parent_is_num: bool = False) -> list[Dataset]:
    """NUM items with a value, walking ContentSequence recursively, except the Image Library
    (TID 1601 image descriptors: rows, columns) and NUM children of a NUM (derivation
    parameters of that measurement)."""
    found = []
    for item in items:
        if item.ValueType == "CONTAINER" and _code(item) == ("111028", "DCM"):
            continue
        is_num = item.ValueType == "NUM"
        if is_num and not parent_is_num and item.get("MeasuredValueSequence"):
            found.append(item)
        found.extend(_valued_numbers(item.get("ContentSequence", []), is_num))
    return found


def _values_out(lesions) -> int:
    """Measurement values in read_annotation_file's output, plus those recorded as flags."""
    flagged = {
        flag
        for lesion in lesions
        for flag in lesion.flags
        if flag.startswith("measurement-outside")
    }
    return sum(len(lesion.measurements) for lesion in lesions) + len(flagged)


# --------------------------------------------------------------------------- the SR


@pytest.fixture(scope="module")
def ct(realdata: Path) -> Dataset:
    return pydicom.dcmread(realdata / HIGHDICOM / "ct_image.dcm", stop_before_pixels=True)


def _on_ct(ct: Dataset, graphic_type: str, points) -> hd.sr.CoordinatesForMeasurement:
    return hd.sr.CoordinatesForMeasurement(
        graphic_type=graphic_type,
        graphic_data=np.array(points, dtype=float),
        source_image=hd.sr.SourceImageForRegion(ct.SOPClassUID, ct.SOPInstanceUID),
    )


def _groups(ct: Dataset) -> list:
    derivations = {
        "Mean": codes.SCT.Mean,
        "Minimum": codes.SCT.Minimum,
        "Maximum": codes.SCT.Maximum,
        "Standard Deviation": codes.SCT.StandardDeviation,
        "Median": codes.SCT.Median,
    }
    suv_values = {"Mean": 6.0, "Minimum": 2.9, "Maximum": 10.4, "Standard Deviation": 1.6}
    suv_values["Median"] = 5.7
    segmented = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking("primary tumor"),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid="1.2.840.10008.5.1.4.1.1.66.4",
            sop_instance_uid=SEG_UID,
            segment_number=2,
            source_series=hd.sr.SourceSeriesForSegmentation(ct.SeriesInstanceUID),
        ),
        finding_type=codes.SCT.Neoplasm,
        measurements=[
            _measure(VOLUME, 70361.9, "mm3"),
            _measure(VOLUME, 70.3619, "cm3"),
            *(
                _measure(SUVBW, suv_values[name], SUV, derivation=code)
                for name, code in derivations.items()
            ),
        ],
    )
    long_axis = hd.sr.MeasurementsAndQualitativeEvaluations(  # PixelMed / OHIF length
        tracking_identifier=_tracking("Lesion 1 length"),
        measurements=[
            _measure(
                LONG_AXIS, 4.2, "cm", coordinates=[_on_ct(ct, "POLYLINE", [[10, 20], [50, 50]])]
            ),
            _measure(LONG_AXIS, 42.0, "mm"),
        ],
    )
    probe = hd.sr.MeasurementsAndQualitativeEvaluations(  # a probe: the SR says it is a point
        tracking_identifier=_tracking("Probe 1"),
        measurements=[
            _measure(
                codes.SCT.Diameter, 7.5, "mm", coordinates=[_on_ct(ct, "POINT", [[30.5, 40.5]])]
            )
        ],
    )
    unitless = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking("unitless volume"),
        measurements=[_measure(VOLUME, 12.0, "1")],
    )
    disagreeing = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking("disagreeing volume"),
        measurements=[_measure(VOLUME, 1000.0, "mm3"), _measure(VOLUME, 1.05, "ml")],
    )
    twice = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking("measured twice"),
        measurements=[_measure(LONG_AXIS, 30.0, "mm"), _measure(LONG_AXIS, 31.0, "mm")],
    )
    empty = hd.sr.MeasurementsAndQualitativeEvaluations(tracking_identifier=_tracking("empty"))
    in_3d = [
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=_tracking(f"3D {graphic_type}"),
            measurements=[
                _measure(
                    LONG_AXIS,
                    9.0,
                    "mm",
                    coordinates=[
                        hd.sr.CoordinatesForMeasurement3D(
                            graphic_type, np.array(points), ct.FrameOfReferenceUID
                        )
                    ],
                )
            ],
        )
        for graphic_type, points in POINTS_3D.items()
    ]
    return [segmented, long_axis, probe, unitless, disagreeing, twice, empty, *in_3d]


@pytest.fixture(scope="module")
def sr_path(ct: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_person_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Person,
                observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                    name="Reader^Test"
                ),
            )
        ),
        procedure_reported=hd.sr.CodedConcept("25045-6", "LN", "CT unspecified body region"),
        imaging_measurements=_groups(ct),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sr = hd.sr.Comprehensive3DSR(
            evidence=[ct, _seg_header(ct)],
            content=report,
            series_instance_uid=hd.UID(),
            series_number=99,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="test",
        )
    path = tmp_path_factory.mktemp("sr_units") / "writers.dcm"
    sr.save_as(path)
    return path


def _seg_header(ct: Dataset) -> Dataset:
    """The header of the SEG the tumour group refers to (SR evidence)."""
    seg = Dataset()
    seg.SOPClassUID = "1.2.840.10008.5.1.4.1.1.66.4"
    seg.SOPInstanceUID = SEG_UID
    seg.StudyInstanceUID = ct.StudyInstanceUID
    seg.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.112"
    return seg


def _by_id(sr_path: Path, ct: Dataset | None = None) -> dict:
    lookup = {ct.SOPInstanceUID: ct}.get if ct is not None else None
    return {f.tracking_id: f for f in read_sr(sr_path, image_header_for=lookup).findings}


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("value", "unit", "target", "expected"),
    [
        (70361.9, "mm3", "ml", 70.3619),
        (70.3619, "cm3", "mL", 70.3619),
        (1.5, "l", "ml", 1500.0),
        (2.0, "mL", "mm3", 2000.0),
        (4.2, "cm", "mm", 42.0),
        (250.0, "um", "mm", 0.25),
        (0.5, "m", "mm", 500.0),
        (1.7, "cm2", "mm2", 170.0),
        (12.0, "1", "ml", None),
        (3.0, "{SUVbw}g/ml", "ml", None),
        (3.0, "mm", "ml", None),
        (3.0, "mm3", "furlong", None),
    ],
)
def test_in_unit(value: float, unit: str, target: str, expected: float | None) -> None:
    converted = SrMeasurement("Volume", value, unit, None).in_unit(target)
    assert converted == (None if expected is None else pytest.approx(expected, rel=1e-12))


def test_one_volume_in_two_units(sr_path: Path) -> None:
    tumor = _by_id(sr_path)["primary tumor"]
    assert tumor.volume_ml == pytest.approx(70361.9 / 1000, rel=1e-12)
    assert not [f for f in tumor.flags if f.startswith("unit")]

    (lesion,) = [les for les in read_annotation_file(sr_path) if les.label == "primary tumor"]
    assert lesion.volume_ml == pytest.approx(70.3619, rel=1e-12)
    assert lesion.measurements["Volume (mm3)"] == 70361.9
    assert lesion.measurements["Volume (cm3)"] == 70.3619


def test_volume_without_volume_unit_is_never_millilitres(sr_path: Path) -> None:
    finding = _by_id(sr_path)["unitless volume"]
    assert finding.volume_ml is None
    assert finding.flags == (
        "unit-not-convertible: 'Volume' = 12 '1' is not a UCUM volume unit; kept as stored, "
        "not converted",
    )
    (lesion,) = [les for les in read_annotation_file(sr_path) if les.label == "unitless volume"]
    assert lesion.measurements == {"Volume (1)": 12.0}


def test_lesion_volume_without_volume_unit_is_never_millilitres(sr_path: Path) -> None:
    (lesion,) = [les for les in read_annotation_file(sr_path) if les.label == "unitless volume"]
    assert lesion.volume_ml is None


def test_units_that_disagree_are_flagged(sr_path: Path) -> None:
    finding = _by_id(sr_path)["disagreeing volume"]
    assert finding.volume_ml == pytest.approx(1.0)  # the first one, 1000 mm3
    assert finding.flags == (
        "units-disagree: 'Volume' is 1000 mm3 and 1.05 ml (= 1050 mm3) in the same group",
    )


def test_long_axis_in_cm_and_mm(sr_path: Path, ct: Dataset) -> None:
    finding = _by_id(sr_path, ct)["Lesion 1 length"]
    assert finding.group_template == "TID1501"
    assert finding.longest_diameter_mm == pytest.approx(42.0)
    assert not [f for f in finding.flags if f.startswith("unit")]
    (lesion,) = [les for les in read_annotation_file(sr_path) if les.label == "Lesion 1 length"]
    assert lesion.longest_diameter_mm == pytest.approx(4.2 * 10)
    assert lesion.measurements == {"Long Axis (cm)": 4.2, "Long Axis (mm)": 42.0}


# --------------------------------------------------------------------------- keys


def test_derivations_are_distinct_keys(sr_path: Path) -> None:
    (lesion,) = [les for les in read_annotation_file(sr_path) if les.label == "primary tumor"]
    assert lesion.measurements == {
        "Volume (mm3)": 70361.9,
        "Volume (cm3)": 70.3619,
        "SUVbw [Mean] ({SUVbw}g/ml)": 6.0,
        "SUVbw [Minimum] ({SUVbw}g/ml)": 2.9,
        "SUVbw [Maximum] ({SUVbw}g/ml)": 10.4,
        "SUVbw [Standard Deviation] ({SUVbw}g/ml)": 1.6,
        "SUVbw [Median] ({SUVbw}g/ml)": 5.7,
    }


def test_same_key_twice_keeps_both(sr_path: Path) -> None:
    (lesion,) = [les for les in read_annotation_file(sr_path) if les.label == "measured twice"]
    assert lesion.measurements == {"Long Axis (mm)": 30.0, "Long Axis (mm) #2": 31.0}
    assert any(f.startswith("measurement-key-collision") for f in lesion.flags)


def test_modifiers_qualify_keys_only_when_needed() -> None:
    """pyradiomics via dcmqi: one feature per image transformation, told apart by concept
    modifiers and a derivation parameter (a NUM child)."""
    original = SrMeasurement("Energy", 1.0, "1", None)
    wavelet = SrMeasurement(
        "Energy", 2.0, "1", None, (("Image transformation", "Wavelet"), ("Wavelet sub-band", "LLH"))
    )
    log1 = SrMeasurement(
        "Energy", 3.0, "1", None, (("Image transformation", "LoG"), ("Kernel size", "1.0 mm"))
    )
    log2 = SrMeasurement(
        "Energy", 4.0, "1", None, (("Image transformation", "LoG"), ("Kernel size", "2.0 mm"))
    )
    volume = SrMeasurement("Volume", 5.0, "ml", None, (("Measurement Method", "Sum of voxels"),))

    values, flags = keyed_values([original, wavelet, log1, log2, volume])

    assert values == {
        "Energy (1)": 1.0,
        "Energy [Image transformation=Wavelet; Wavelet sub-band=LLH] (1)": 2.0,
        "Energy [Image transformation=LoG; Kernel size=1.0 mm] (1)": 3.0,
        "Energy [Image transformation=LoG; Kernel size=2.0 mm] (1)": 4.0,
        "Volume (ml)": 5.0,
    }
    assert flags == []


def test_modifiers_read_from_the_content_tree(realdata: Path, tmp_path: Path) -> None:
    """The dcmqi SR with its SUVbw Mean copied twice, as a LoG feature at two kernel sizes."""
    ds = pydicom.dcmread(realdata / "04_sr_tid1500_dcmqi" / "sr.dcm")
    group = _measurement_groups(ds)[0]
    mean = next(i for i in group.ContentSequence if i.ValueType == "NUM")
    for n, sigma in enumerate(("1.0", "2.0")):
        copied = copy.deepcopy(mean)
        copied.MeasuredValueSequence[0].NumericValue = str(20 + n)
        copied.ContentSequence.append(_code_item("Image transformation", "Laplacian of Gaussian"))
        copied.ContentSequence.append(_num_item("Kernel size", sigma, "mm"))
        group.ContentSequence.append(copied)
    path = tmp_path / "log.dcm"
    ds.save_as(path)

    (lesion,) = read_annotation_file(path)

    prefix = "SUVbw [Mean; Image transformation=Laplacian of Gaussian; Kernel size="
    assert lesion.measurements[prefix + "1.0 mm] ({SUVbw}g/ml)"] == 20.0
    assert lesion.measurements[prefix + "2.0 mm] ({SUVbw}g/ml)"] == 21.0
    assert lesion.measurements["SUVbw [Mean] ({SUVbw}g/ml)"] == pytest.approx(6.01529)
    assert _values_out([lesion]) == len(_valued_numbers(ds.ContentSequence)) == 24


def _measurement_groups(ds: Dataset) -> list[Dataset]:
    (container,) = [i for i in ds.ContentSequence if _code(i) == ("126010", "DCM")]
    return [g for g in container.ContentSequence if _code(g) == ("125007", "DCM")]


def _code_item(name: str, meaning: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = "HAS CONCEPT MOD"
    item.ValueType = "CODE"
    item.ConceptNameCodeSequence = [_coded("tx", "99TEST", name)]
    item.ConceptCodeSequence = [_coded("log", "99TEST", meaning)]
    return item


def _num_item(name: str, value: str, unit: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = "INFERRED FROM"
    item.ValueType = "NUM"
    item.ConceptNameCodeSequence = [_coded("sigma", "99TEST", name)]
    measured = Dataset()
    measured.NumericValue = value
    measured.MeasurementUnitsCodeSequence = [_coded(unit, "UCUM", unit)]
    item.MeasuredValueSequence = [measured]
    return item


def _coded(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


# --------------------------------------------------------------------------- regions, segments


def test_tid1501_point_is_a_seed_other_regions_are_not(sr_path: Path, ct: Dataset) -> None:
    findings = _by_id(sr_path, ct)
    probe, length = findings["Probe 1"], findings["Lesion 1 length"]

    assert probe.graphic_type == "POINT"
    np.testing.assert_allclose(probe.seed_lps, _image_to_lps(ct, [[30.5, 40.5]])[0], atol=1e-9)
    assert probe.flags == ()

    assert length.graphic_type == "POLYLINE" and length.seed_lps is None
    ends = _image_to_lps(ct, [[10, 20], [50, 50]])
    np.testing.assert_allclose(length.region_lps, ends, atol=1e-9)
    np.testing.assert_allclose(length.region_centre_lps, ends.mean(axis=0), atol=1e-9)
    assert length.flags == (
        "region-not-a-point: POLYLINE; no seed point taken from it (region centre LPS "
        + "({:.2f}, {:.2f}, {:.2f}) mm)".format(*ends.mean(axis=0)),
    )


def test_tid1501_scoord3d_point_is_a_seed_as_stored(sr_path: Path) -> None:
    findings = _by_id(sr_path)
    point, line = findings["3D POINT"], findings["3D POLYLINE"]
    assert point.seed_lps == tuple(POINTS_3D["POINT"][0]) and point.flags == ()
    assert line.seed_lps is None
    np.testing.assert_array_equal(line.region_lps, POINTS_3D["POLYLINE"])
    assert line.region_centre_lps == (4.5, 0.0, -298.0)
    assert line.flags == (
        "region-not-a-point: POLYLINE; no seed point taken from it "
        "(region centre LPS (4.50, 0.00, -298.00) mm)",
    )


def test_referenced_segment_and_empty_group_reach_the_lesions(sr_path: Path) -> None:
    lesions = {les.label: les for les in read_annotation_file(sr_path)}
    assert len(lesions) == len(_measurement_groups(pydicom.dcmread(sr_path))) == 9
    assert lesions["primary tumor"].annotation_info["referenced_segment"] == f"{SEG_UID}#2"
    assert lesions["primary tumor"].sources == ("SR",)
    empty = lesions["empty"]
    assert empty.measurements == {} and empty.seed_lps is None and empty.volume_ml is None
    assert "empty-group: no measurement, region or segment reference" in empty.flags
    # without the CT header, the probe point is flagged, not guessed
    assert lesions["Probe 1"].seed_lps is None
    assert any(f.startswith("image-point-unresolved") for f in lesions["Probe 1"].flags)


# --------------------------------------------------------------------------- no value lost


@pytest.mark.parametrize(
    "name",
    [
        "04_sr_tid1500_dcmqi/sr.dcm",
        "05_sr_tid1500_highdicom/sr_document.dcm",
        "05_sr_tid1500_highdicom/sr_document_with_multiple_groups.dcm",
    ],
)
def test_every_measurement_value_reaches_the_lesions(realdata: Path, name: str) -> None:
    path = realdata / name
    expected = _valued_numbers(pydicom.dcmread(path).ContentSequence)
    assert expected
    assert _values_out(read_annotation_file(path)) == len(expected)


def test_every_measurement_value_reaches_the_lesions_writers(sr_path: Path) -> None:
    expected = _valued_numbers(pydicom.dcmread(sr_path).ContentSequence)
    assert _values_out(read_annotation_file(sr_path)) == len(expected) == 17


def test_measurement_outside_groups_is_flagged(realdata: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(realdata / HIGHDICOM / "sr_document_with_multiple_groups.dcm")
    derived = Dataset()
    derived.RelationshipType = "CONTAINS"
    derived.ValueType = "CONTAINER"
    derived.ContinuityOfContent = "SEPARATE"
    derived.ConceptNameCodeSequence = [_coded("126011", "DCM", "Derived Imaging Measurements")]
    total = _num_item("Total volume", "3.5", "ml")
    total.RelationshipType = "CONTAINS"
    derived.ContentSequence = [total]
    ds.ContentSequence.append(derived)
    path = tmp_path / "derived.dcm"
    ds.save_as(path)

    lesions = read_annotation_file(path)

    flag = (
        "measurement-outside-groups: 'Total volume' = 3.5 ml in 'Derived Imaging Measurements' "
        "is not a measurement of a measurement group; not read as one"
    )
    assert all(flag in lesion.flags for lesion in lesions)
    assert _values_out(lesions) == len(_valued_numbers(ds.ContentSequence)) == 5


def test_real_volumes_in_millilitres(realdata: Path) -> None:
    """Volumes as stored (dcmqi: ml; highdicom: mm3) against the arithmetic."""
    (dcmqi,) = read_annotation_file(realdata / "04_sr_tid1500_dcmqi" / "sr.dcm")
    assert dcmqi.volume_ml == pytest.approx(33.5824, rel=1e-12)  # 33.5824 ml
    groups = _measurement_groups(
        pydicom.dcmread(realdata / HIGHDICOM / "sr_document_with_multiple_groups.dcm")
    )
    (volume,) = [i for i in groups[3].ContentSequence if i.ValueType == "NUM"]
    value = volume.MeasuredValueSequence[0]
    assert value.MeasurementUnitsCodeSequence[0].CodeValue == "mm3"
    lesions = {
        les.label: les
        for les in read_annotation_file(
            realdata / HIGHDICOM / "sr_document_with_multiple_groups.dcm"
        )
    }
    assert lesions["Vertebra0001"].volume_ml == pytest.approx(float(value.NumericValue) / 1000)
    assert lesions["Aorta0001"].longest_diameter_mm == pytest.approx(20.0)  # "Diameter" 20 mm


def _image_to_lps(header: Dataset, points) -> np.ndarray:
    """LPS of (column, row) image coordinates; (0.5, 0.5) is the centre of pixel (0, 0)."""
    ipp = np.array(header.ImagePositionPatient, dtype=float)
    iop = np.array(header.ImageOrientationPatient, dtype=float)
    row_spacing, col_spacing = (float(v) for v in header.PixelSpacing)
    return np.array(
        [
            ipp + (c - 0.5) * col_spacing * iop[:3] + (r - 0.5) * row_spacing * iop[3:]
            for c, r in points
        ]
    )
