"""The conversion report: what became of every series and file of a download.

``tt.build`` writes it next to the dataset as ``report.json`` (deterministic: sorted, no timings,
so a rebuild from the same download writes the same bytes) and ``report.md`` (for people):

- every indexed series, ``converted`` (examples per config), ``label`` (the image series it
  labels) or ``skipped`` (with the reason); every file the index left out;
- every lesion with its quality flags (:attr:`Lesion.flags`), and every part of an annotation
  object (ROI, segment, SR measurement group) that became no lesion, with the reason;
- patients with images but no clinical row, and clinical rows without images;
- ``warnings``: everything a ``strict`` build refuses (skipped DICOM files, index problems,
  ignored annotation metadata CSVs, annotation series without their images (unless only
  configs that need no images were built and the series gave lesion rows), series or examples
  that failed, annotation series that gave nothing, volume warnings, imaged patients without a
  clinical row).  Lesion quality flags, series that are not labels of the collection, image
  series without annotations and non-DICOM files are reported but are not warnings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tcia_trials.examples import IMAGE_FREE_CONFIGS, SeriesNotes
from tcia_trials.hf import atomic_write
from tcia_trials.source.annotations import AnnotationLinks
from tcia_trials.source.index import Index

#: Kinds of skipped files that are listed but are not warnings (see ``Problem``).
BENIGN_FILE_KINDS = ("not-dicom", "dicomdir", "duplicate-file")
#: Warnings shown in messages and the CLI before "... and N more".
SHOWN_WARNINGS = 20


@dataclass(frozen=True)
class SeriesEntry:
    """One indexed series and what became of it."""

    series_uid: str
    patient_id: str
    study_uid: str
    modality: str
    description: str
    folder: str  # the folder holding its files
    status: str  # "converted" | "label" | "skipped"
    reason: str | None = None  # why it was skipped
    examples: dict[str, int] = field(default_factory=dict)  # converted: config -> examples
    failed: dict[str, str] = field(default_factory=dict)  # converted: config -> why none
    labels: str | None = None  # label: the image series it labels
    labeled_by: tuple[str, ...] = ()  # converted: its annotation series


@dataclass(frozen=True)
class FileEntry:
    """A file the index left out."""

    path: str
    kind: str  # Problem kind: not-dicom, unreadable, missing-uid, ...
    message: str


@dataclass(frozen=True)
class LesionEntry:
    """A lesion of a converted series and its quality flags."""

    patient_id: str
    series_uid: str
    lesion_id: str
    label: str
    flags: tuple[str, ...]


@dataclass(frozen=True)
class PartEntry:
    """A part of an annotation object that became no lesion (e.g. an empty ROI)."""

    series_uid: str  # the image series it was read for
    origin: str  # "<annotation series UID>/ROI <n>", ".../segment <n>", ...
    reason: str


@dataclass(frozen=True)
class Issue:
    """A warning: its kind, where (file path, series UID, example key or patient) and what."""

    kind: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}: {self.message}"


@dataclass
class ConversionReport:
    """What a build made of its download; see the module docstring."""

    builder: str
    version: str
    dataset: str
    source: str
    configs: dict[str, dict[str, int]]  # config -> split -> examples
    series: list[SeriesEntry]
    skipped_files: list[FileEntry]
    lesions: list[LesionEntry]
    skipped_parts: list[PartEntry]
    images_without_clinical: list[str]
    clinical_without_images: list[str]
    warnings: list[Issue]

    @classmethod
    def assemble(
        cls,
        *,
        builder: str,
        version: str,
        dataset: str,
        index: Index,
        links: AnnotationLinks,
        notes: Mapping[str, SeriesNotes],
        skips: Mapping[str, Iterable[tuple[str, str]]],
        configs: Mapping[str, Mapping[str, int]],
        images_without_clinical: Iterable[str] = (),
        clinical_without_images: Iterable[str] = (),
    ) -> ConversionReport:
        """The report of a build from what it used: the index, the annotation links, the notes
        and skips of :func:`~tcia_trials.examples.iter_examples` and the examples written."""
        labeled = {
            ann: image
            for groups in (links.by_image, links.without_images)
            for image, anns in groups.items()
            for ann in anns
        }
        series = [_series_entry(uid, index, links, labeled, notes) for uid in index.series]
        problems = set(index.problems)
        warnings = {Issue(p.kind, str(p.path or p.series_uid or ""), p.message) for p in problems}
        warnings |= {
            Issue("skipped-file", str(p.path), p.message)
            for p in index.skipped
            if p.kind not in BENIGN_FILE_KINDS and p not in problems
        }
        warnings |= {Issue("annotation-csv", path, why) for path, why in links.problems.items()}
        needs_images = any(name not in (*IMAGE_FREE_CONFIGS, "clinical") for name in configs)
        warnings |= {
            Issue("orphan", uid, why)
            for uid, why in links.orphans.items()
            if needs_images or uid not in notes.get(labeled.get(uid, ""), SeriesNotes()).used
        }
        for uid, series_notes in notes.items():
            by_reason: dict[str, list[str]] = {}
            for config, why in series_notes.failed.items():
                by_reason.setdefault(why, []).append(config)
            warnings |= {
                Issue("series-failed", uid, f"{why} (configs: {', '.join(sorted(names))})")
                for why, names in by_reason.items()
            }
            warnings |= {Issue("series-warning", uid, text) for text in series_notes.warnings}
            warnings |= {Issue("annotation-unused", a, w) for a, w in series_notes.unused.items()}
        warnings |= {
            Issue("example-skipped", what, f"{config}: {why}")
            for config, pairs in skips.items()
            for what, why in pairs
            if what not in index.series  # whole-series failures are "series-failed"
        }
        warnings |= {
            Issue("no-clinical-row", patient, "imaged patient without a row in the clinical sheet")
            for patient in images_without_clinical
        }
        lesions = [
            LesionEntry(_patient(uid, index, links), uid, lesion_id, label, tuple(sorted(flags)))
            for uid, series_notes in notes.items()
            for lesion_id, (label, flags) in series_notes.lesions.items()
        ]
        return cls(
            builder=builder,
            version=version,
            dataset=dataset,
            source=str(index.root),
            configs={name: dict(sorted(splits.items())) for name, splits in configs.items()},
            series=sorted(series, key=lambda s: (s.patient_id, s.study_uid, s.series_uid)),
            skipped_files=sorted(
                (FileEntry(str(p.path), p.kind, p.message) for p in index.skipped),
                key=lambda f: (f.path, f.kind),
            ),
            lesions=sorted(
                lesions, key=lambda les: (les.patient_id, les.series_uid, les.lesion_id)
            ),
            skipped_parts=sorted(
                PartEntry(uid, origin, why)
                for uid, series_notes in notes.items()
                for origin, why in series_notes.skipped_parts.items()
            ),
            images_without_clinical=sorted(images_without_clinical),
            clinical_without_images=sorted(clinical_without_images),
            warnings=sorted(warnings, key=lambda w: (w.kind, w.where, w.message)),
        )

    def count(self, status: str) -> int:
        """Series with this status ("converted", "label" or "skipped")."""
        return sum(entry.status == status for entry in self.series)

    def summary(self) -> list[str]:
        """A few lines for people: series, files, lesions, clinical reconciliation, warnings."""
        flagged = sum(bool(lesion.flags) for lesion in self.lesions)
        partly = sum(bool(entry.failed) for entry in self.series)
        return [
            f"{len(self.series)} series indexed: {self.count('converted')} image series converted "
            f"({partly} not in every config), "
            f"{self.count('label')} annotation series used as labels, "
            f"{self.count('skipped')} skipped; {len(self.skipped_files)} file(s) left out by the index",
            f"{len(self.lesions)} lesions ({flagged} with quality flags); "
            f"{len(self.skipped_parts)} annotation part(s) that are no lesion",
            f"clinical: {len(self.images_without_clinical)} imaged patient(s) without a row, "
            f"{len(self.clinical_without_images)} row(s) without images",
            f"{len(self.warnings)} warning(s)",
        ]

    def warning_lines(self, limit: int = SHOWN_WARNINGS) -> list[str]:
        """The first ``limit`` warnings, one per line, and how many more there are."""
        lines = [f"- {issue}" for issue in self.warnings[:limit]]
        if len(self.warnings) > limit:
            lines.append(f"- ... and {len(self.warnings) - limit} more (see report.json)")
        return lines

    def to_json(self) -> str:
        """Deterministic JSON: keys and lists sorted, no timings."""
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def to_markdown(self) -> str:
        """``report.md``: the summary, examples per config and split, skipped series, warnings,
        flagged lesions."""
        lines = [
            f"# Conversion report: {self.dataset}",
            "",
            f"Builder `{self.builder}` {self.version}, source `{self.source}`.",
            "",
            *(f"- {line}" for line in self.summary()),
            "",
            "## Examples",
            "",
            "| config | split | examples |",
            "|---|---|---|",
            *(
                f"| {config} | {split} | {n} |"
                for config, splits in self.configs.items()
                for split, n in splits.items()
            ),
        ]
        skipped = [s for s in self.series if s.status == "skipped"]
        lines += ["", f"## Skipped series ({len(skipped)})", ""]
        lines += [
            f"- `{s.series_uid}` ({s.patient_id}, {s.modality} {s.description!r}, `{s.folder}`): "
            f"{s.reason}"
            for s in skipped
        ] or ["None."]
        lines += ["", f"## Warnings ({len(self.warnings)})", ""]
        lines += [f"- {issue}" for issue in self.warnings] or ["None."]
        flagged = [lesion for lesion in self.lesions if lesion.flags]
        lines += ["", f"## Lesions with quality flags ({len(flagged)} of {len(self.lesions)})", ""]
        lines += [
            f"- {les.patient_id} `{les.series_uid}` {les.label}: {'; '.join(les.flags)}"
            for les in flagged
        ] or ["None."]
        lines += ["", f"## Annotation parts that are no lesion ({len(self.skipped_parts)})", ""]
        lines += [f"- `{part.origin}`: {part.reason}" for part in self.skipped_parts] or ["None."]
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> Path:
        """Write ``report.json`` and ``report.md`` into ``folder``; returns the JSON's path."""
        atomic_write(folder / "report.md", self.to_markdown())
        atomic_write(folder / "report.json", self.to_json())
        return folder / "report.json"


def _patient(uid: str, index: Index, links: AnnotationLinks) -> str:
    """The patient of an image series, or of the annotation series of one not downloaded."""
    if uid in links.without_images:
        uid = links.without_images[uid][0]
    return index.series[uid].patient_id


def _series_entry(
    uid: str,
    index: Index,
    links: AnnotationLinks,
    labeled: Mapping[str, str],
    notes: Mapping[str, SeriesNotes],
) -> SeriesEntry:
    series = index.series[uid]
    entry = {
        "series_uid": uid,
        "patient_id": series.patient_id,
        "study_uid": series.study_uid,
        "modality": series.modality,
        "description": series.description,
        "folder": os.path.commonpath([str(path.parent) for path in series.paths]),
    }
    if uid in links.excluded:
        return SeriesEntry(**entry, status="skipped", reason=links.excluded[uid])
    if uid in labeled:
        image = labeled[uid]
        image_notes = notes.get(image, SeriesNotes())
        if uid in image_notes.used:
            return SeriesEntry(**entry, status="label", labels=image)
        reason = (
            image_notes.unused.get(uid)
            or links.orphans.get(uid)
            or (
                f"its image series {image} could not be read"
                if image_notes.failed
                else "not read by the configs built"
            )
        )
        return SeriesEntry(**entry, status="skipped", reason=reason)
    if uid in links.orphans:
        return SeriesEntry(**entry, status="skipped", reason=links.orphans[uid])
    if uid not in links.by_image:
        return SeriesEntry(**entry, status="skipped", reason="no annotation series refers to it")
    image_notes = notes.get(uid, SeriesNotes())
    if image_notes.failed and len(image_notes.failed) == len(image_notes.examples):
        reason = "; ".join(sorted(set(image_notes.failed.values())))
        return SeriesEntry(**entry, status="skipped", reason=reason)
    return SeriesEntry(
        **entry,
        status="converted",
        examples=dict(sorted(image_notes.examples.items())),
        failed=dict(sorted(image_notes.failed.items())),
        labeled_by=tuple(sorted(links.by_image[uid])),
    )
