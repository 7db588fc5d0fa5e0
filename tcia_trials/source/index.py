"""Index a TCIA download (NBIA, TCIA Data Retriever, IDC, DICOMDIR or plain folders).

:func:`scan` walks a folder, reads the DICOM headers only (never pixel data), groups the files
into series and studies, and cross-checks what it found against the download's own records
(``metadata.csv`` counts, DICOMDIR references).  Nothing about a bad file is fatal: each file that
is not indexed is listed in :attr:`Index.skipped` with its reason, and each inconsistency in
:attr:`Index.problems`.

Collection names, first found wins:

1. the ``Collection`` column of the download's metadata table;
2. the TCIA de-identification stamp in the headers (private creator ``CTP`` at (0013,0010),
   project name at (0013,1010));
3. the collection folder of the layout (IDC ``collection_id``, NBIA ``Collection``);
4. ClinicalTrialProtocolID (0012,0020).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.filereader import read_partial
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

from tcia_trials.errors import DownloadLayoutError, InstanceNotFoundError
from tcia_trials.source.layout import choose_layout, folder_pattern, layout_collection
from tcia_trials.source.metadata_csv import (
    METADATA_FILE_NAMES,
    MetadataRow,
    MetadataTable,
    read_metadata_csv,
    read_series_json,
    resolve_location,
)

__all__ = ["Index", "Instance", "Problem", "Series", "Study", "scan"]

_DIRECTORY_STORAGE = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage (DICOMDIR)
# Names of directory files without file meta (Philips exports call it DIRFILE).
_DICOMDIR_NAMES = ("DICOMDIR", "DIRFILE")
_CTP_CREATOR = Tag(0x0013, 0x0010)
_CTP_PROJECT = Tag(0x0013, 0x1010)
# Every attribute the index needs sits at or before (0028,0008) NumberOfFrames; reading stops
# there, so pixel data, contours (3006,xxxx) and per-frame functional groups (5200,xxxx) are never
# parsed.  This is 1.5-3x faster than dcmread(stop_before_pixels=True) on SEG and RTSTRUCT files.
_LAST_NEEDED_TAG = Tag(0x0028, 0x0008)


def _past_needed_tags(tag: BaseTag, vr: str | None, length: int) -> bool:
    return int(tag) > _LAST_NEEDED_TAG  # int(): BaseTag's own comparison is slow


# How many folders above the root to look for the metadata.csv of an NBIA download.
_TABLE_SEARCH_LEVELS = 4
# Little-endian groups a DICOM data set without preamble usually starts with.
_HEADERLESS_GROUPS = (0x0002, 0x0008)


# ------------------------------------------------------------------------------------------------
# Public data model


@dataclass(frozen=True, slots=True)
class Instance:
    """One DICOM file of a series."""

    path: Path  # absolute
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None
    number_of_frames: int  # 1 for single-frame
    transfer_syntax_uid: str | None  # None for files without file meta (read with force=True)


@dataclass(slots=True, repr=False)
class Series:
    """The files of one SeriesInstanceUID, sorted by (InstanceNumber, path)."""

    series_uid: str
    study_uid: str
    patient_id: str
    modality: str
    description: str  # SeriesDescription ("" if absent)
    series_number: int | None
    sop_class_uid: str
    frame_of_reference_uid: str | None
    time_point: str | None  # ClinicalTrialTimePointID (0012,0050)
    collection: str | None  # see the module docstring for the precedence
    instances: list[Instance]
    expected_instances: int | None  # "Number of Images" of the metadata table, when present
    trial_protocol_id: str | None = None  # ClinicalTrialProtocolID (0012,0020)

    @property
    def paths(self) -> list[Path]:
        """The files of the series, in instance order."""
        return [i.path for i in self.instances]

    def __repr__(self) -> str:
        return (
            f"Series({self.series_uid!r}, patient={self.patient_id!r}, modality={self.modality!r},"
            f" description={self.description!r}, instances={len(self.instances)})"
        )


@dataclass(slots=True)
class Study:
    """A StudyInstanceUID and the series indexed in it."""

    study_uid: str
    patient_id: str
    date: str | None  # StudyDate as written in DICOM (YYYYMMDD)
    description: str
    series_uids: list[str]


@dataclass(frozen=True, slots=True)
class Problem:
    """Something the user must know about (reported, not fatal).

    Kinds of :attr:`Index.skipped`: ``not-dicom``, ``unreadable``, ``missing-uid``, ``dicomdir``,
    ``duplicate-file`` (same file reached twice through links), ``duplicate-instance``.
    Kinds of :attr:`Index.problems`: ``count-mismatch``, ``missing-series``,
    ``duplicate-instance``, ``conflicting-headers``, ``dicomdir-missing-file``,
    ``dicomdir-mismatch``, ``dicomdir-unreadable``, ``metadata-csv``.
    """

    kind: str
    message: str  # names the file/series, what was found and what was expected
    path: Path | None = None
    series_uid: str | None = None


@dataclass(slots=True, repr=False)
class Index:
    """The series and studies of a download, with the files left out and the problems found.

    Every file seen is either an instance of a series or listed in :attr:`skipped`.
    """

    root: Path
    layout: str  # "nbia" | "nbia-classic" | "retriever" | "idc" | "dicomdir" | "folder"
    series: dict[str, Series]
    studies: dict[str, Study]
    skipped: list[Problem]
    problems: list[Problem]
    metadata_tables: list[Path] = field(default_factory=list)
    dicomdirs: list[Path] = field(default_factory=list)
    _by_sop: dict[str, Instance] = field(default_factory=dict, init=False, compare=False)

    def instance(self, sop_instance_uid: str) -> Instance:
        """The instance with this SOPInstanceUID; :class:`InstanceNotFoundError` if absent."""
        found = self._by_sop.get(sop_instance_uid)
        if found is not None:
            return found
        n_instances = sum(len(s.instances) for s in self.series.values())
        if len(self._by_sop) != n_instances:  # built lazily; rebuilt if series were edited
            self._by_sop = {
                i.sop_instance_uid: i for s in self.series.values() for i in s.instances
            }
            found = self._by_sop.get(sop_instance_uid)
            if found is not None:
                return found
        raise InstanceNotFoundError(
            f"instance {sop_instance_uid} (SOPInstanceUID) is not in the index of {self.root} "
            f"({n_instances} instances in {len(self.series)} series)"
        )

    @property
    def patients(self) -> list[str]:
        """The PatientIDs of the indexed series, sorted."""
        return sorted({s.patient_id for s in self.series.values()})

    def series_for_patient(self, patient_id: str) -> list[Series]:
        """The series of one PatientID, in index order ([] when the patient is unknown)."""
        return [s for s in self.series.values() if s.patient_id == patient_id]

    def summary(self) -> dict[str, int | dict[str, int]]:
        """Counts: patients, studies, series, instances, skipped by reason, problems by kind."""
        return {
            "patients": len(self.patients),
            "studies": len(self.studies),
            "series": len(self.series),
            "instances": sum(len(s.instances) for s in self.series.values()),
            "skipped": dict(sorted(Counter(p.kind for p in self.skipped).items())),
            "problems": dict(sorted(Counter(p.kind for p in self.problems).items())),
        }

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"Index({str(self.root)!r}, layout={self.layout!r}, patients={s['patients']}, "
            f"studies={s['studies']}, series={s['series']}, instances={s['instances']}, "
            f"skipped={len(self.skipped)}, problems={len(self.problems)})"
        )


# ------------------------------------------------------------------------------------------------
# Header reading (runs in worker processes when workers > 1)


@dataclass(frozen=True, slots=True)
class _Header:
    path: str
    sop_instance_uid: str
    sop_class_uid: str
    series_uid: str
    study_uid: str
    patient_id: str
    modality: str
    series_description: str
    series_number: int | None
    instance_number: int | None
    number_of_frames: int
    frame_of_reference_uid: str | None
    time_point: str | None
    study_date: str | None
    study_description: str
    transfer_syntax_uid: str | None
    ctp_project: str | None
    trial_protocol_id: str | None


@dataclass(frozen=True, slots=True)
class _Skip:
    path: str
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class _DicomDir:
    path: str
    references: tuple[tuple[tuple[str, ...], str | None], ...]
    error: str | None


def _ascii(ds: pydicom.Dataset, tag: int) -> str:
    """The value of an ASCII-only element (UI, CS, IS, DA) without pydicom's conversion."""
    try:
        element = ds.get_item(tag)
    except Exception:
        return ""
    if element is None:
        return ""
    value = element.value
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace").strip("\x00 ")
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


def _text(ds: pydicom.Dataset, key: str) -> str:
    """The value of a text element, decoded by pydicom (character sets)."""
    try:
        value = ds.get(key)
    except Exception:  # invalid values raise in some validation modes
        return ""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


def _int(ds: pydicom.Dataset, tag: int) -> int | None:
    text = _ascii(ds, tag).split("\\")[0]
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def _private_text(ds: pydicom.Dataset, tag: Tag) -> str:
    try:
        element = ds.get(tag)
        value = None if element is None else element.value
    except Exception:
        return ""
    if isinstance(value, bytes):
        value = value.decode("latin-1", errors="replace")
    return str(value).strip().strip("\x00") if value is not None else ""


def _looks_headerless(head: bytes) -> bool:
    """True when the bytes start like a DICOM data set written without preamble."""
    if len(head) < 8:
        return False
    group_le = int.from_bytes(head[0:2], "little")
    group_be = int.from_bytes(head[0:2], "big")
    return group_le in _HEADERLESS_GROUPS or group_be in _HEADERLESS_GROUPS or head[:4] == b"DICM"


def _read_dicomdir(path: str, ds: pydicom.Dataset) -> _DicomDir:
    """The file references of a DICOMDIR (its records are in group 0004, already read)."""
    try:
        references: list[tuple[tuple[str, ...], str | None]] = []
        for record in ds.get("DirectoryRecordSequence", []):
            file_id = record.get("ReferencedFileID")
            if not file_id:
                continue
            parts = (file_id,) if isinstance(file_id, str) else tuple(str(p) for p in file_id)
            sop = record.get("ReferencedSOPInstanceUIDInFile")
            references.append((parts, str(sop) if sop else None))
        return _DicomDir(path, tuple(references), None)
    except Exception as exc:
        return _DicomDir(path, (), f"{type(exc).__name__}: {exc}")


def _read_one(path: str) -> _Header | _Skip | _DicomDir:
    """Read the header of one file, or say why it is not indexed."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
            if not head:
                return _Skip(path, "not-dicom", f"{path}: empty file (0 bytes), not DICOM")
            if head[128:132] == b"DICM":
                force = False
            elif _looks_headerless(head):
                force = True
            else:
                return _Skip(
                    path,
                    "not-dicom",
                    f"{path}: not DICOM (no 'DICM' marker at byte 128 and no DICOM data element "
                    "at the start)",
                )
            fh.seek(0)
            try:
                ds = read_partial(fh, stop_when=_past_needed_tags, force=force)
            except Exception as exc:
                return _Skip(
                    path,
                    "unreadable",
                    f"{path}: the DICOM header cannot be parsed: {type(exc).__name__}: {exc}",
                )
    except OSError as exc:
        return _Skip(path, "unreadable", f"{path}: cannot be read: {exc}")

    meta = getattr(ds, "file_meta", None)
    media_class = _ascii(meta, 0x00020002) if meta is not None else ""
    if media_class == _DIRECTORY_STORAGE or (
        not media_class and os.path.basename(path).upper() in _DICOMDIR_NAMES
    ):
        return _read_dicomdir(path, ds)

    sop_instance_uid = _ascii(ds, 0x00080018)
    series_uid = _ascii(ds, 0x0020000E)
    sop_class_uid = _ascii(ds, 0x00080016) or media_class
    if force and not (sop_instance_uid or series_uid or sop_class_uid):
        return _Skip(
            path,
            "not-dicom",
            f"{path}: not DICOM (no preamble, and read as a data set it has no SOPClassUID, "
            "SOPInstanceUID or SeriesInstanceUID)",
        )
    missing = [
        name
        for name, value in (("SOPInstanceUID", sop_instance_uid), ("SeriesInstanceUID", series_uid))
        if not value
    ]
    if missing:
        return _Skip(
            path,
            "missing-uid",
            f"{path}: DICOM file without {' and '.join(missing)} (class "
            f"{sop_class_uid or 'unknown'}); it cannot be placed in a series",
        )
    transfer_syntax = _ascii(meta, 0x00020010) if meta is not None else ""
    ctp = _private_text(ds, _CTP_PROJECT) if _private_text(ds, _CTP_CREATOR) == "CTP" else ""
    return _Header(
        path=path,
        sop_instance_uid=sop_instance_uid,
        sop_class_uid=sop_class_uid,
        series_uid=series_uid,
        study_uid=_ascii(ds, 0x0020000D),
        patient_id=_text(ds, "PatientID"),
        modality=_ascii(ds, 0x00080060),
        series_description=_text(ds, "SeriesDescription"),
        series_number=_int(ds, 0x00200011),
        instance_number=_int(ds, 0x00200013),
        number_of_frames=max(_int(ds, 0x00280008) or 1, 1),
        frame_of_reference_uid=_ascii(ds, 0x00200052) or None,
        time_point=_text(ds, "ClinicalTrialTimePointID") or None,
        study_date=_ascii(ds, 0x00080020) or None,
        study_description=_text(ds, "StudyDescription"),
        transfer_syntax_uid=transfer_syntax or None,
        ctp_project=ctp or None,
        trial_protocol_id=_text(ds, "ClinicalTrialProtocolID") or None,
    )


def _read_chunk(paths: Sequence[str]) -> list[_Header | _Skip | _DicomDir]:
    """Read several files (one task of the process pool); pydicom warnings are silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [_read_one(p) for p in paths]


# ------------------------------------------------------------------------------------------------
# Walking


def _identity(path: str, device: int, inode: int) -> tuple[int, int] | str:
    """What makes a file or folder the same one: (device, inode), or the real path on file
    systems that report no inode numbers."""
    return (device, inode) if inode else os.path.realpath(path)


def _walk(root: Path) -> tuple[list[Path], list[Problem]]:
    """All files below ``root`` in a deterministic order, hidden folders excluded.

    Symbolic links are followed; a folder reached twice (a link loop) is walked once, and a file
    reached twice (links) is indexed once, the other paths being skipped as ``duplicate-file``.
    """
    files: list[Path] = []
    skipped: list[Problem] = []
    root_stat = root.stat()
    seen_dirs = {_identity(str(root), root_stat.st_dev, root_stat.st_ino)}
    seen_files: dict[tuple[int, int] | str, str] = {}
    stack: list[tuple[str, int]] = [(str(root), root_stat.st_dev)]
    while stack:
        folder, device = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            skipped.append(
                Problem("unreadable", f"{folder}: the folder cannot be listed: {exc}", Path(folder))
            )
            continue
        subdirs: list[tuple[str, int]] = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
                is_link = entry.is_symlink()
            except OSError:
                is_dir = is_file = False
                is_link = True
            if is_dir:
                if entry.name.startswith("."):
                    continue
                try:
                    st = entry.stat()
                except OSError:
                    continue
                key = _identity(entry.path, st.st_dev, st.st_ino)
                if key not in seen_dirs:
                    seen_dirs.add(key)
                    subdirs.append((entry.path, st.st_dev))
            elif is_file:
                try:
                    if is_link:
                        st = entry.stat()
                        key = _identity(entry.path, st.st_dev, st.st_ino)
                    else:
                        key = _identity(entry.path, device, entry.inode())
                except OSError as exc:
                    skipped.append(
                        Problem(
                            "unreadable", f"{entry.path}: cannot be read: {exc}", Path(entry.path)
                        )
                    )
                    continue
                first = seen_files.get(key)
                if first is not None:
                    skipped.append(
                        Problem(
                            "duplicate-file",
                            f"{entry.path}: the same file as {first} (a symbolic or hard link); "
                            "indexed once",
                            Path(entry.path),
                        )
                    )
                    continue
                seen_files[key] = entry.path
                files.append(Path(entry.path))
            elif is_link:
                try:
                    target = os.readlink(entry.path)
                except OSError:
                    target = "?"
                skipped.append(
                    Problem(
                        "unreadable",
                        f"{entry.path}: broken symbolic link (its target {target} does not exist)",
                        Path(entry.path),
                    )
                )
            else:
                skipped.append(
                    Problem(
                        "not-dicom",
                        f"{entry.path}: not a regular file (socket, pipe or device)",
                        Path(entry.path),
                    )
                )
        stack.extend(reversed(subdirs))
    return files, skipped


def _read_all(
    files: Sequence[Path], workers: int, progress: Callable[[int, int], None] | None
) -> list[_Header | _Skip | _DicomDir]:
    total = len(files)
    names = [str(p) for p in files]
    if progress is not None:
        progress(0, total)
    results: list[_Header | _Skip | _DicomDir] = []
    if workers <= 1 or total < 64:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, name in enumerate(names, start=1):
                results.append(_read_one(name))
                if progress is not None:
                    progress(i, total)
        return results
    size = max(16, min(512, total // (workers * 8) or 1))
    chunks = [names[i : i + size] for i in range(0, total, size)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for chunk_results in pool.map(_read_chunk, chunks):
            results.extend(chunk_results)
            if progress is not None:
                progress(len(results), total)
    return results


# ------------------------------------------------------------------------------------------------
# Assembly and cross-checks


def _majority(values: Iterable[str]) -> tuple[str, Counter[str]]:
    """The most common value (ties: the first seen) and the counts."""
    counts = Counter(values)
    return counts.most_common(1)[0][0], counts


def _first(values: Iterable[str | None]) -> str | None:
    return next((v for v in values if v), None)


def _rel_parts(path: Path, base: Path) -> tuple[str, ...]:
    try:
        return path.relative_to(base).parts
    except ValueError:
        return (path.name,)


def _describe_counts(counts: Counter[str], headers: Sequence[_Header], attr: str) -> str:
    parts = []
    for value, n in counts.most_common():
        example = next(h.path for h in headers if getattr(h, attr) == value)
        parts.append(f"{value or '(empty)'!s} in {n} file{'s' * (n != 1)} (e.g. {example})")
    return "; ".join(parts)


def _load_tables(
    files: Sequence[Path], root: Path, base: Path
) -> tuple[list[MetadataTable], list[MetadataRow], list[Problem]]:
    """Read the metadata tables and per-series JSON records of the download.

    When the root holds no table, the nearest ``metadata.csv`` up to four folders above it is used
    (the user scanned a collection, patient, study or series folder of an NBIA download), keeping
    only the rows whose file location lies inside the root.
    """
    tables: list[MetadataTable] = []
    problems: list[Problem] = []
    json_rows: list[MetadataRow] = []
    for path in files:
        name = path.name.lower()
        if name in METADATA_FILE_NAMES:
            try:
                tables.append(read_metadata_csv(path))
            except DownloadLayoutError as exc:
                problems.append(Problem("metadata-csv", f"{exc}; table ignored", path))
        elif name.endswith(".json") and path.parent.name.lower() == "metadata":
            row = read_series_json(path)
            if row is not None:
                json_rows.append(row)
    if not tables and root.is_dir():
        # The root may be a collection, patient, study or series folder of an NBIA download.
        above = next(
            (
                d / "metadata.csv"
                for d in base.parents[:_TABLE_SEARCH_LEVELS]
                if (d / "metadata.csv").is_file()
            ),
            None,
        )
        if above is not None:
            try:
                table = read_metadata_csv(above)
            except DownloadLayoutError:
                table = None
            if table is not None:
                kept = []
                for row in table.rows:
                    if row.file_location:
                        where = resolve_location(above.parent, row.file_location)
                        if where == base or base in where.parents:
                            kept.append(row)
                tables.append(
                    MetadataTable(table.path, table.dialect, table.columns, tuple(kept), ())
                )
    for table in tables:
        for issue in table.issues:
            problems.append(Problem("metadata-csv", issue, table.path))
    return tables, json_rows, problems


def _folder_of(series: Series, row: MetadataRow | None) -> str:
    """The folder of a series for messages: its File Location, else where its files are."""
    if row is not None and row.file_location:
        return row.file_location
    parents = sorted({str(p.parent) for p in series.paths})
    return parents[0] if len(parents) == 1 else f"{len(parents)} folders, e.g. {parents[0]}"


def _deduplicate(headers: Sequence[_Header]) -> tuple[list[_Header], list[Problem]]:
    """One file per SOPInstanceUID: the first (walk order) is kept, the others reported."""
    by_sop: dict[str, _Header] = {}
    unique: list[_Header] = []
    duplicates: list[Problem] = []
    for h in headers:
        first = by_sop.get(h.sop_instance_uid)
        if first is None:
            by_sop[h.sop_instance_uid] = h
            unique.append(h)
            continue
        duplicates.append(
            Problem(
                "duplicate-instance",
                f"{h.path}: SOPInstanceUID {h.sop_instance_uid} is also in {first.path}; "
                "the first file is indexed, this one ignored",
                Path(h.path),
                h.series_uid,
            )
        )
    return unique, duplicates


def _build_series(
    headers: Sequence[_Header],
    rows: dict[str, MetadataRow],
    layout: str,
    base: Path,
    problems: list[Problem],
) -> list[Series]:
    """Group headers into series (sorted by patient, study, series number, UID)."""
    grouped: dict[str, list[_Header]] = {}
    for h in headers:
        grouped.setdefault(h.series_uid, []).append(h)
    out: list[Series] = []
    for series_uid, group in grouped.items():
        values: dict[str, str] = {}
        for attr, label in (
            ("study_uid", "StudyInstanceUID"),
            ("patient_id", "PatientID"),
            ("modality", "Modality"),
        ):
            value, counts = _majority(getattr(h, attr) for h in group)
            values[attr] = value
            if len(counts) > 1:
                problems.append(
                    Problem(
                        "conflicting-headers",
                        f"series {series_uid}: its files disagree on {label}: "
                        f"{_describe_counts(counts, group, attr)}; the series keeps {value!r}",
                        Path(group[0].path),
                        series_uid,
                    )
                )
        instances = sorted(
            (
                Instance(
                    path=Path(h.path),
                    sop_instance_uid=h.sop_instance_uid,
                    sop_class_uid=sys.intern(h.sop_class_uid),
                    instance_number=h.instance_number,
                    number_of_frames=h.number_of_frames,
                    transfer_syntax_uid=(
                        sys.intern(h.transfer_syntax_uid) if h.transfer_syntax_uid else None
                    ),
                )
                for h in group
            ),
            key=lambda i: (i.instance_number is None, i.instance_number or 0, str(i.path)),
        )
        row = rows.get(series_uid)
        collection = (
            (row.collection if row is not None else None)
            or _first(h.ctp_project for h in group)
            or layout_collection(layout, _rel_parts(Path(group[0].path), base))
            or _first(h.trial_protocol_id for h in group)
        )
        out.append(
            Series(
                series_uid=series_uid,
                study_uid=values["study_uid"],
                patient_id=values["patient_id"],
                modality=values["modality"],
                description=_first(h.series_description for h in group) or "",
                series_number=next(
                    (h.series_number for h in group if h.series_number is not None), None
                ),
                sop_class_uid=_majority(h.sop_class_uid for h in group)[0],
                frame_of_reference_uid=_first(h.frame_of_reference_uid for h in group),
                time_point=_first(h.time_point for h in group),
                collection=collection,
                instances=instances,
                expected_instances=row.number_of_images if row is not None else None,
                trial_protocol_id=_first(h.trial_protocol_id for h in group),
            )
        )
    out.sort(
        key=lambda s: (
            s.patient_id,
            s.study_uid,
            s.series_number is None,
            s.series_number or 0,
            s.series_uid,
        )
    )
    return out


def _build_studies(
    series: dict[str, Series], headers: Sequence[_Header], problems: list[Problem]
) -> list[Study]:
    """Studies of the indexed series (sorted by patient, date, UID)."""
    study_headers: dict[str, list[_Header]] = {}
    for h in headers:
        if series[h.series_uid].study_uid == h.study_uid:
            study_headers.setdefault(h.study_uid, []).append(h)
    members_of: dict[str, list[Series]] = {}
    for s in series.values():
        members_of.setdefault(s.study_uid, []).append(s)
    studies: list[Study] = []
    for study_uid, members in members_of.items():
        patient_id, counts = _majority(s.patient_id for s in members)
        if len(counts) > 1:
            detail = "; ".join(
                f"{pid or '(empty)'} in series "
                + ", ".join(s.series_uid for s in members if s.patient_id == pid)
                for pid in counts
            )
            problems.append(
                Problem(
                    "conflicting-headers",
                    f"study {study_uid}: its series disagree on PatientID: {detail}; "
                    f"the study keeps {patient_id!r}",
                )
            )
        hs = study_headers.get(study_uid, [])
        studies.append(
            Study(
                study_uid=study_uid,
                patient_id=patient_id,
                date=_first(h.study_date for h in hs),
                description=_first(h.study_description for h in hs) or "",
                series_uids=[s.series_uid for s in members],
            )
        )
    studies.sort(key=lambda st: (st.patient_id, st.date or "", st.study_uid))
    return studies


def _check_counts(
    series: dict[str, Series],
    rows: dict[str, MetadataRow],
    row_table: dict[str, MetadataTable],
    skipped: Sequence[Problem],
) -> list[Problem]:
    """Series whose number of files differs from the metadata table's "Number of Images"."""
    skipped_by_folder: dict[Path, Counter[str]] = {}
    for p in skipped:
        if p.path is not None:
            skipped_by_folder.setdefault(p.path.parent, Counter())[p.kind] += 1
    problems: list[Problem] = []
    for s in series.values():
        row = rows.get(s.series_uid)
        if row is None or row.number_of_images is None or row.number_of_images == len(s.instances):
            continue
        skipped_here: Counter[str] = Counter()
        for folder in {i.path.parent for i in s.instances}:
            skipped_here.update(skipped_by_folder.get(folder, Counter()))
        note = ""
        if skipped_here:
            detail = ", ".join(f"{n} {k}" for k, n in sorted(skipped_here.items()))
            note = f" (files skipped in that folder: {detail})"
        table = row_table.get(s.series_uid)
        source = f"{table.path} line {row.line}" if table is not None else "its metadata record"
        found = len(s.instances)
        problems.append(
            Problem(
                "count-mismatch",
                f"series {s.series_uid} ({s.modality} {s.description!r}, folder "
                f"{_folder_of(s, row)}): {source} lists {row.number_of_images} images, "
                f"found {found} DICOM file{'s' * (found != 1)}{note}",
                s.instances[0].path.parent,
                s.series_uid,
            )
        )
    return problems


def _check_missing(
    series: dict[str, Series],
    rows: dict[str, MetadataRow],
    row_table: dict[str, MetadataTable],
    files: Sequence[Path],
    root: Path,
) -> list[Problem]:
    """Series listed in a metadata table but without any file on disk."""
    files_per_folder = Counter(f.parent for f in files)
    problems: list[Problem] = []
    for series_uid, row in rows.items():
        if series_uid in series:
            continue
        table = row_table.get(series_uid)
        where = ""
        folder: Path | None = None
        if row.file_location and table is not None:
            folder = resolve_location(table.path.parent, row.file_location)
            if folder.is_dir():
                n_files = files_per_folder.get(folder, 0)
                where = (
                    f"; its folder {row.file_location} exists with {n_files} file"
                    f"{'s' * (n_files != 1)} but none of them is a DICOM file of this series"
                )
            else:
                where = f"; its folder {row.file_location} does not exist"
        source = f"{table.path} line {row.line}" if table is not None else "a metadata record"
        expected = (
            f"{row.number_of_images} images" if row.number_of_images is not None else "images"
        )
        desc = f" {row.series_description!r}" if row.series_description else ""
        problems.append(
            Problem(
                "missing-series",
                f"series {series_uid} ({row.modality or 'modality ?'}{desc}, patient "
                f"{row.patient_id or '?'}) is listed in {source} with {expected}, but no DICOM "
                f"file of it was found under {root}{where}",
                folder,
                series_uid,
            )
        )
    return problems


def _file_finder(files: Sequence[Path]) -> Callable[[Path], str | None]:
    """``find(path)``: the indexed file at ``path``, matched exactly, else ignoring case (ISO 9660
    media and Windows copies change the case of names), or None."""
    exact = {str(p) for p in files}
    folded = {str(p).lower(): str(p) for p in files}

    def find(path: Path) -> str | None:
        name = str(path)
        return name if name in exact else folded.get(name.lower())

    return find


def _dicomdir_base(
    d: _DicomDir, root: Path, files: Sequence[Path], find: Callable[[Path], str | None]
) -> Path:
    """The folder a DICOMDIR's ReferencedFileIDs are relative to.

    The standard (PS3.10) makes them relative to the file-set root, the folder holding the
    DICOMDIR, and that folder is kept whenever every reference resolves there.  Copies of media move the
    directory file (Philips exports name it DIRFILE and put it in DICOM/ beside the files, or
    the reverse): then the folder above it (up to ``root``) or the subfolder below it under which
    the most references resolve is taken, the DICOMDIR's own folder winning ties.
    """
    folder = Path(d.path).parent

    def resolved(base: Path) -> int:
        return sum(find(base.joinpath(*parts)) is not None for parts, _ in d.references)

    best, best_count = folder, resolved(folder)
    if best_count == len(d.references):
        return folder
    above = [p for p in folder.parents if p == root or root in p.parents]
    prefix = str(folder) + os.sep
    below = sorted(
        {
            folder / str(f)[len(prefix) :].split(os.sep, 1)[0]
            for f in files
            if str(f).startswith(prefix) and os.sep in str(f)[len(prefix) :]
        }
    )
    for base in (*above, *below):
        count = resolved(base)
        if count > best_count:
            best, best_count = base, count
    return best


def _check_dicomdirs(
    dicomdirs: Sequence[_DicomDir], files: Sequence[Path], headers: Sequence[_Header], root: Path
) -> list[Problem]:
    """Files referenced by a DICOMDIR that are missing or hold another instance (references are
    resolved as :func:`_dicomdir_base` says)."""
    find = _file_finder(files)
    header_by_path = {h.path: h for h in headers}
    problems: list[Problem] = []
    for d in dicomdirs:
        if d.error is not None:
            problems.append(
                Problem(
                    "dicomdir-unreadable",
                    f"{d.path}: the DICOMDIR records cannot be read ({d.error}); its references "
                    "were not checked",
                    Path(d.path),
                )
            )
            continue
        base = _dicomdir_base(d, root, files, find)
        moved = "" if base == Path(d.path).parent else f" (references resolved from {base})"
        for parts, sop in d.references:
            target = base.joinpath(*parts)
            name = find(target)
            if name is None:
                problems.append(
                    Problem(
                        "dicomdir-missing-file",
                        f"{d.path} references {'/'.join(parts)} (SOPInstanceUID {sop or '?'}), "
                        f"but {target} does not exist{moved}",
                        target,
                    )
                )
                continue
            h = header_by_path.get(name)
            if h is not None and sop and h.sop_instance_uid != sop:
                problems.append(
                    Problem(
                        "dicomdir-mismatch",
                        f"{d.path} references {'/'.join(parts)} as SOPInstanceUID {sop}, but "
                        f"{name} holds {h.sop_instance_uid}{moved}",
                        Path(name),
                        h.series_uid,
                    )
                )
    return problems


def scan(
    path: str | os.PathLike[str],
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Index:
    """Index a download folder (or a single file) by reading DICOM headers only.

    Parameters
    ----------
    path:
        The download: an NBIA / TCIA Data Retriever folder (with its ``metadata.csv``), an IDC
        download, a DICOMDIR media set, or any folder of DICOM files (with or without ``.dcm``).
    workers:
        Processes reading headers in parallel (used from 64 files on); the result is identical
        to ``workers=1``.
    progress:
        Called as ``progress(files_done, files_total)`` while reading.

    Raises
    ------
    DownloadLayoutError
        The path does not exist, holds no files, or holds no indexable DICOM file.
    """
    if workers < 1:
        raise ValueError(f"scan: workers must be at least 1, got {workers}")
    root = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    if not root.exists():
        raise DownloadLayoutError(
            f"{root}: no such file or folder; expected a TCIA download (NBIA or TCIA Data "
            "Retriever folder, IDC download, or folders of DICOM files)"
        )
    if root.is_dir():
        base = root
        files, skipped = _walk(root)
    else:
        base = root.parent
        files, skipped = [root], []
    if not files and not skipped:
        raise DownloadLayoutError(
            f"{root}: the folder is empty (no files; hidden folders such as .git are not "
            "searched); expected DICOM files of a TCIA download"
        )

    headers: list[_Header] = []
    dicomdirs: list[_DicomDir] = []
    for result in _read_all(files, workers, progress):
        if isinstance(result, _Header):
            headers.append(result)
        elif isinstance(result, _DicomDir):
            dicomdirs.append(result)
            skipped.append(
                Problem(
                    "dicomdir",
                    f"{result.path}: DICOMDIR (directory of a media set, "
                    f"{len(result.references)} file references); not an instance, used to "
                    "cross-check the files",
                    Path(result.path),
                )
            )
        else:
            skipped.append(Problem(result.kind, result.message, Path(result.path)))
    if not headers:
        kinds = Counter(p.kind for p in skipped)
        detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        example = skipped[0].message if skipped else ""
        raise DownloadLayoutError(
            f"{root}: no DICOM file could be indexed: {len(files)} files seen, "
            f"{len(skipped)} skipped ({detail}); e.g. {example}"
        )

    unique, duplicates = _deduplicate(headers)
    problems: list[Problem] = list(duplicates)
    skipped.extend(duplicates)

    tables, json_rows, table_problems = _load_tables(files, root, base)
    problems.extend(table_problems)
    rows: dict[str, MetadataRow] = {}
    row_table: dict[str, MetadataTable] = {}
    for table in tables:
        for row in table.rows:
            if row.series_uid not in rows:
                rows[row.series_uid] = row
                row_table[row.series_uid] = table
    for row in json_rows:
        rows.setdefault(row.series_uid, row)

    patterns = []
    for h in unique:
        parts = _rel_parts(Path(h.path), base)
        patterns.append((folder_pattern(parts, h.study_uid, h.series_uid), len(parts)))
    layout = choose_layout(
        patterns,
        table_dialects=[t.dialect for t in tables] + (["tcia"] if json_rows else []),
        has_dicomdir=bool(dicomdirs),
    )

    series = {s.series_uid: s for s in _build_series(unique, rows, layout, base, problems)}
    studies = {st.study_uid: st for st in _build_studies(series, unique, problems)}
    problems.extend(_check_counts(series, rows, row_table, skipped))
    problems.extend(_check_missing(series, rows, row_table, files, root))
    problems.extend(_check_dicomdirs(dicomdirs, files, headers, base))

    index = Index(
        root=root,
        layout=layout,
        series=series,
        studies=studies,
        skipped=sorted(skipped, key=lambda p: str(p.path)),
        problems=problems,
        metadata_tables=[t.path for t in tables],
        dicomdirs=[Path(d.path) for d in dicomdirs],
    )
    index._by_sop = {i.sop_instance_uid: i for s in series.values() for i in s.instances}
    return index
