"""SUVbw factor against hand-computed values, and clear errors for missing PET tags."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydicom.dataset import Dataset

from tcia_trials.errors import SuvError
from tcia_trials.source.suv import suvbw_factor

# 70 kg, 370 MBq F-18 injected at 09:00:00, series starts at 10:00:00 (3600 s later)
EXPECTED = 70_000 / (370e6 * 2 ** (-3600 / 6586.2))


def pet_header(**changes) -> Dataset:
    ds = Dataset()
    ds.Modality = "PT"
    ds.Units = "BQML"
    ds.DecayCorrection = "START"
    ds.CorrectedImage = ["ATTN", "DECY"]
    ds.PatientWeight = "70"
    ds.SeriesDate = "20200102"
    ds.SeriesTime = "100000"
    info = Dataset()
    info.RadionuclideTotalDose = "370000000"
    info.RadionuclideHalfLife = "6586.2"
    info.RadiopharmaceuticalStartDateTime = "20200102090000"
    ds.RadiopharmaceuticalInformationSequence = [info]
    for keyword, value in changes.items():
        target = info if keyword.startswith("Radio") else ds
        if value is None:
            delattr(target, keyword)
        else:
            setattr(target, keyword, value)
    return ds


def test_suvbw_factor_matches_hand_computation():
    assert suvbw_factor(pet_header(), source="PET") == pytest.approx(EXPECTED, rel=1e-12)


def test_start_time_only_uses_series_date():
    ds = pet_header(RadiopharmaceuticalStartDateTime=None, RadiopharmaceuticalStartTime="090000")
    assert suvbw_factor(ds, source="PET") == pytest.approx(EXPECTED, rel=1e-12)


def test_series_time_after_acquisition_uses_earliest_acquisition():
    # SeriesTime rewritten to 11:00 by post-processing; acquisitions started at 10:00
    ds = pet_header(SeriesTime="110000")
    acquisitions = [datetime(2020, 1, 2, 10, 5), datetime(2020, 1, 2, 10, 0), None]
    assert suvbw_factor(ds, acquisitions, source="PET") == pytest.approx(EXPECTED, rel=1e-12)


def test_admin_decay_correction_needs_no_decay():
    ds = pet_header(DecayCorrection="ADMIN")
    assert suvbw_factor(ds, source="PET") == pytest.approx(70_000 / 370e6, rel=1e-12)


def test_gml_units_are_already_suv():
    assert suvbw_factor(pet_header(Units="GML"), source="PET") == 1.0


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"PatientWeight": None}, "PET 7: PatientWeight is missing"),
        ({"PatientWeight": "0"}, "PatientWeight must be positive"),
        ({"RadionuclideTotalDose": None}, "RadionuclideTotalDose is missing"),
        ({"RadionuclideHalfLife": None}, "RadionuclideHalfLife is missing"),
        ({"Units": "CNTS"}, r"CNTS without the Philips SUV scale factor \(7053,1000\)"),
        ({"Units": "PROPCPS"}, r"Units \(0054,1001\) is 'PROPCPS'"),
        ({"DecayCorrection": "NONE"}, r"DecayCorrection \(0054,1102\) is 'NONE'"),
        ({"CorrectedImage": ["ATTN"]}, "lacks DECY"),
        ({"RadiopharmaceuticalStartDateTime": "20200102110000"}, "after the scan start"),
        (
            {"RadiopharmaceuticalStartDateTime": None},
            "RadiopharmaceuticalStartDateTime and RadiopharmaceuticalStartTime are missing",
        ),
    ],
)
def test_missing_or_unsupported_tags_are_named(changes, match):
    with pytest.raises(SuvError, match=match):
        suvbw_factor(pet_header(**changes), source="PET 7")


def test_missing_radiopharmaceutical_sequence_is_named():
    ds = pet_header()
    del ds.RadiopharmaceuticalInformationSequence
    with pytest.raises(
        SuvError, match=r"RadiopharmaceuticalInformationSequence \(0054,0016\) is missing"
    ):
        suvbw_factor(ds, source="PET")


def test_philips_counts_with_suv_scale_factor():
    ds = pet_header(Units="CNTS")
    ds.add_new((0x7053, 0x1000), "DS", "0.000521")
    assert suvbw_factor(ds, source="PET") == pytest.approx(0.000521)
