"""The neutral dataset definition: frozen dataclasses, validated on construction, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class AnnotationRules:
    """How a collection names its annotation series, as data (never per-trial code).

    The default follows the NCTN / EAY131 tumor annotations: one series per lesion, described
    ``"<time point>, <LOCATION> - <n>"`` for contours and masks and
    ``"<time point>, <LOCATION> - <n> - SEED POINT"`` for seed points, and
    ``"<time point>, LESION SEED POINT - NO FINDINGS"`` for an explicit negative.

    Attributes
    ----------
    lesion_pattern:
        Regular expression matched (``re.fullmatch``, case-insensitive) against a series
        description. Named groups: ``label`` (required, e.g. "LIVER - 1"), ``location``
        (e.g. "LIVER"), ``time_point`` and ``seed`` (non-empty when the series holds the seed).
        Series whose description does not match label their lesions by segment / ROI name.
    no_findings_pattern:
        Regular expression searched in a series description, ROI name or segment label that
        marks an explicit "no lesion" annotation.
    time_point_source:
        Where the time point comes from: "tag" (ClinicalTrialTimePointID, falling back to the
        description), "description", or "tag-only".
    annotation_csv_glob:
        File-name pattern of TCIA's annotation metadata CSV (SeriesInstanceUID,
        ReferencedSeriesInstanceUID, Annotation Type) searched in the download's top folders.
    """

    lesion_pattern: str = (
        r"\s*(?:(?P<time_point>[^,]+?)\s*,\s*)?"
        r"(?P<label>(?P<location>.+?)\s*-\s*(?P<number>\d+))"
        r"(?P<seed>\s*-\s*SEED\s+POINT)?\s*"
    )
    no_findings_pattern: str = r"NO\s+FINDINGS"
    time_point_source: str = "tag"
    annotation_csv_glob: str = "*nnotation*metadata*.csv"

    def __post_init__(self) -> None:
        for name in ("lesion_pattern", "no_findings_pattern"):
            try:
                compiled = re.compile(getattr(self, name), re.IGNORECASE)
            except re.error as exc:
                raise ValueError(
                    f"AnnotationRules.{name} is not a valid regular expression: {exc}"
                ) from exc
            if name == "lesion_pattern" and "label" not in compiled.groupindex:
                raise ValueError("AnnotationRules.lesion_pattern needs a named group 'label'")
        if self.time_point_source not in ("tag", "description", "tag-only"):
            raise ValueError(
                "AnnotationRules.time_point_source must be 'tag', 'description' or 'tag-only', "
                f"got {self.time_point_source!r}"
            )
