"""Download folder layouts (NBIA Data Retriever descriptive and classic, TCIA Data Retriever,
IDC) with their metadata files, and TCIA's annotation metadata CSV.

NBIA descriptive folder names follow real downloads, e.g.
``CPTAC-PDA/C3L-00189/07-28-2003-NA-CT ABDOMEN  PELVIS ENHANCEDAB-63347/
303.000000-Pre-dose  PANCREATIC DUCT - 1-113.4/1-1.dcm``: ``{MM-DD-YYYY}-{StudyID or NA}-
{StudyDescription}-{last 5 characters of StudyInstanceUID}`` and ``{SeriesNumber}.000000-
{SeriesDescription}-{last 5 characters of SeriesInstanceUID}``, with commas turned into spaces and
characters that are unsafe in paths (``& / \\ : * ? " < > | #``) dropped; files ``1-{n}.dcm``
numbered in download order, zero-padded to the width of the file count.  NBIA's metadata.csv
writes values unquoted, so descriptions with commas shift the columns of a naive CSV parser.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.uid import UID

from .ids import make_uuid

LAYOUTS = ("nbia", "nbia-classic", "retriever", "idc")

NBIA_HEADER = (
    "Series UID,Collection,3rd Party Analysis,Data Description URI,Subject ID,Study UID,"
    "Study Description,Study Date,Series Description,Manufacturer,Modality,SOP Class Name,"
    "SOP Class UID,Number of Images,File Size,File Location,Download Timestamp"
)
RETRIEVER_COLUMNS = (
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Collection",
    "Modality",
    "SeriesDescription",
    "StudyDescription",
    "StudyDate",
    "Manufacturer",
    "NumberOfImages",
    "FileSize",
    "FileLocation",
)
ANNOTATION_COLUMNS = ("SeriesInstanceUID", "ReferencedSeriesInstanceUID", "Annotation Type")
DOWNLOAD_START = dt.datetime(2024, 5, 1, 12, 0, 0)
_UNSAFE = re.compile(r'[&/\\:*?"<>|#\x00-\x1f]')


@dataclass(frozen=True)
class SeriesEntry:
    """What a layout needs to know about a series to place it and list it."""

    patient_id: str
    study_uid: str
    study_date: dt.date
    study_description: str
    series_uid: str
    series_number: int | None
    series_description: str
    modality: str
    manufacturer: str
    sop_class_uid: str
    third_party: bool


def nbia_name(text: str) -> str:
    """NBIA folder-name component: commas become spaces, unsafe characters are dropped;
    ``"NA"`` when empty."""
    cleaned = _UNSAFE.sub("", text.replace(",", " ")).strip()
    return cleaned or "NA"


def collection_id(collection: str) -> str:
    """IDC ``collection_id``: lower case, non-alphanumerics as underscores."""
    return re.sub(r"[^0-9a-z]+", "_", collection.lower()).strip("_")


def file_size_text(size: int) -> str:
    """NBIA's human file size, decimal units: ``"163.31 KB"``, ``"117.84 MB"``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size / 1e3:.2f} KB"


@dataclass
class Layout:
    """One download layout writing under ``out``; collects rows for its metadata file."""

    name: str
    out: Path
    collection: str
    rows: list[tuple[SeriesEntry, Path, int, int]] = field(default_factory=list)
    _used: dict[Path, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {self.name!r}")

    def series_dir(self, entry: SeriesEntry) -> Path:
        """Folder of a series, relative to ``out``."""
        if self.name == "nbia":
            study = (
                f"{entry.study_date:%m-%d-%Y}-NA-{nbia_name(entry.study_description)}-"
                f"{entry.study_uid[-5:]}"
            )
            number = "NA" if entry.series_number is None else f"{entry.series_number}.000000"
            series = f"{number}-{nbia_name(entry.series_description)}-{entry.series_uid[-5:]}"
            rel = Path(self.collection, entry.patient_id, study, series)
            base, n = rel, 1
            while self._used.get(rel, entry.series_uid) != entry.series_uid:
                n += 1
                rel = base.with_name(f"{base.name} ({n})")
            self._used[rel] = entry.series_uid
            return rel
        if self.name == "nbia-classic":
            return Path(self.collection, entry.patient_id, entry.study_uid, entry.series_uid)
        if self.name == "retriever":
            return Path(entry.patient_id, entry.study_uid, entry.series_uid)
        return Path(
            collection_id(self.collection),
            entry.patient_id,
            entry.study_uid,
            f"{entry.modality}_{entry.series_uid}",
        )

    def file_name(self, position: int, n_files: int, sop_uid: str) -> str:
        """Name of the ``position``-th file (0-based, download order) of a series."""
        if self.name == "nbia":
            return f"1-{position + 1:0{len(str(n_files))}d}.dcm"
        if self.name == "nbia-classic":
            return f"{position + 1:06d}.dcm"
        if self.name == "retriever":
            return f"{sop_uid}.dcm"
        return f"{make_uuid('idc', sop_uid)}.dcm"

    def record(self, entry: SeriesEntry, rel_dir: Path, n_files: int, size: int) -> None:
        """Remember a written series for the metadata file."""
        self.rows.append((entry, rel_dir, n_files, size))

    def write_metadata(self) -> Path | None:
        """Write ``metadata.csv`` (NBIA unquoted, or Data Retriever quoted); None for IDC."""
        path = self.out / "metadata.csv"
        if self.name in ("nbia", "nbia-classic"):
            lines = [NBIA_HEADER]
            for n, (e, rel, count, size) in enumerate(self.rows):
                stamp = DOWNLOAD_START + dt.timedelta(milliseconds=731 * n)
                lines.append(
                    ",".join(
                        [
                            e.series_uid,
                            self.collection,
                            "YES" if e.third_party else "NO",
                            "",
                            e.patient_id,
                            e.study_uid,
                            e.study_description,
                            f"{e.study_date:%m-%d-%Y}",
                            e.series_description,
                            e.manufacturer,
                            e.modality,
                            UID(e.sop_class_uid).name,
                            e.sop_class_uid,
                            str(count),
                            file_size_text(size),
                            "./" + rel.as_posix(),
                            stamp.strftime("%Y-%m-%dT%H:%M:%S.")
                            + f"{stamp.microsecond // 1000:03d}",
                        ]
                    )
                )
            path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
            return path
        if self.name == "retriever":
            with path.open("w", encoding="utf-8", newline="") as fh:
                writer = csv.writer(fh, lineterminator="\n")
                writer.writerow(RETRIEVER_COLUMNS)
                for e, rel, count, size in self.rows:
                    writer.writerow(
                        [
                            e.patient_id,
                            e.study_uid,
                            e.series_uid,
                            self.collection,
                            e.modality,
                            e.series_description,
                            e.study_description,
                            f"{e.study_date:%Y%m%d}",
                            e.manufacturer,
                            count,
                            size,
                            "./" + rel.as_posix(),
                        ]
                    )
            return path
        return None


def write_annotation_csv(out: Path, collection: str, rows: list[tuple[str, str, str]]) -> Path:
    """TCIA annotation metadata CSV: SeriesInstanceUID, ReferencedSeriesInstanceUID,
    Annotation Type (``Segmentation`` | ``Seed point`` | ``No findings``)."""
    path = out / f"{collection}-Annotations_metadata.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(ANNOTATION_COLUMNS)
        writer.writerows(rows)
    return path
