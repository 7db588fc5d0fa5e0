"""Body-weight standardized uptake value (SUVbw) for PET series.

Follows the vendor-neutral calculation of the QIBA FDG-PET/CT profile (the "SUV calculation"
pseudo-code published with it)::

    SUVbw = activity_concentration [Bq/mL] * PatientWeight [g] / decayed_dose [Bq]
    decayed_dose = RadionuclideTotalDose * 2 ** (-(scan_start - injection) / RadionuclideHalfLife)

``scan_start`` is SeriesDate/SeriesTime unless that is later than the earliest acquisition of
the series (some scanners rewrite it), in which case the earliest AcquisitionDate/Time is used.
Neither pydicom nor highdicom computes SUV, hence this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydicom.dataset import Dataset
from pydicom.valuerep import DA, DT, TM

from tcia_trials.errors import SuvError


def suvbw_factor(
    ds: Dataset, acquisition_datetimes: Iterable[datetime | None] = (), *, source: str
) -> float:
    """Factor converting the rescaled pixel values of a PET series to SUVbw (g/mL).

    Parameters
    ----------
    ds:
        A header of the series (any of its images: the tags used are series-level).
    acquisition_datetimes:
        Acquisition date-times of all images of the series, for the scan-start rule.
    source:
        Series or file named in error messages.

    Raises
    ------
    SuvError
        When a tag needed for the calculation is missing or holds an unsupported value; the
        message names the tag.
    """
    units = str(ds.get("Units", "")).upper()
    if units == "GML":
        return 1.0
    if units not in ("BQML", "CNTS"):
        raise SuvError(
            f"{source}: Units (0054,1001) is {units or 'missing'!r}; SUVbw needs BQML (or GML)"
        )
    if units == "CNTS":
        philips_scale = _philips_suv_scale(ds)
        if philips_scale is None:
            raise SuvError(
                f"{source}: Units (0054,1001) is CNTS without the Philips SUV scale factor (7053,1000)"
            )
        return philips_scale

    weight_kg = _positive(ds, "PatientWeight", source)
    info = _radiopharmaceutical(ds, source)
    dose = _positive(info, "RadionuclideTotalDose", source)
    half_life = _positive(info, "RadionuclideHalfLife", source)
    correction = str(ds.get("DecayCorrection", "")).upper()
    corrected = [str(v).upper() for v in _as_list(ds.get("CorrectedImage"))]
    if correction == "ADMIN":
        decay = 1.0
    elif correction == "START":
        if corrected and "DECY" not in corrected:
            raise SuvError(
                f"{source}: DecayCorrection is START but CorrectedImage {corrected} lacks DECY"
            )
        scan_start = _scan_start(ds, acquisition_datetimes, source)
        injection = _injection_time(info, ds, source)
        elapsed = (scan_start - injection).total_seconds()
        if elapsed < 0:
            raise SuvError(
                f"{source}: the radiopharmaceutical start ({injection.isoformat()}) is after the "
                f"scan start ({scan_start.isoformat()})"
            )
        decay = 2.0 ** (-elapsed / half_life)
    else:
        raise SuvError(
            f"{source}: DecayCorrection (0054,1102) is {correction or 'missing'!r}; "
            "SUVbw needs START or ADMIN"
        )
    return weight_kg * 1000.0 / (dose * decay)


def _philips_suv_scale(ds: Dataset) -> float | None:
    element = ds.get((0x7053, 0x1000))
    if element is None:
        return None
    value = element.value
    if isinstance(value, bytes):
        value = value.decode(errors="ignore").strip("\x00 ")
    try:
        scale = float(value)
    except (TypeError, ValueError):
        return None
    return scale if scale > 0 else None


def _radiopharmaceutical(ds: Dataset, source: str) -> Dataset:
    sequence = ds.get("RadiopharmaceuticalInformationSequence")
    if not sequence:
        raise SuvError(f"{source}: RadiopharmaceuticalInformationSequence (0054,0016) is missing")
    return sequence[0]


def _positive(ds: Dataset, keyword: str, source: str) -> float:
    value = ds.get(keyword)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SuvError(
            f"{source}: {keyword} is {'missing' if value in (None, '') else repr(value)}"
        ) from None
    if not number > 0:
        raise SuvError(f"{source}: {keyword} must be positive, got {number}")
    return number


def _scan_start(ds: Dataset, acquisitions: Iterable[datetime | None], source: str) -> datetime:
    series = combine_date_time(ds.get("SeriesDate"), ds.get("SeriesTime"))
    earliest = min((a for a in acquisitions if a is not None), default=None)
    if series is None and earliest is None:
        raise SuvError(f"{source}: SeriesDate/SeriesTime and AcquisitionDate/Time are missing")
    if series is None or (earliest is not None and series > earliest):
        return earliest  # type: ignore[return-value]
    return series


def _injection_time(info: Dataset, ds: Dataset, source: str) -> datetime:
    start_dt = info.get("RadiopharmaceuticalStartDateTime")
    if start_dt:
        return _naive(DT(start_dt))
    start = combine_date_time(ds.get("SeriesDate"), info.get("RadiopharmaceuticalStartTime"))
    if start is None:
        raise SuvError(
            f"{source}: RadiopharmaceuticalStartDateTime and RadiopharmaceuticalStartTime are missing"
        )
    return start


def combine_date_time(date: object, time: object) -> datetime | None:
    """Combine DICOM DA and TM values into a naive datetime (None when either is empty)."""
    if not date or not time:
        return None
    return datetime.combine(DA(str(date)), TM(str(time)))


def _naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None)


def _as_list(value: object) -> list:
    if value is None or value == "":
        return []
    return list(value) if not isinstance(value, str) else [value]
