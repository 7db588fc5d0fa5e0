"""tcia-trials: labeled TCIA clinical-trial collections as ML-ready datasets.

The public interface: index a download with :func:`scan`, read an image series with
:func:`read_volume` and its tumour annotations with :func:`read_annotations` (or one annotation
file alone with :func:`read_annotation_file`).  Errors derive from :class:`TciaTrialsError`.
"""

from __future__ import annotations

import importlib.util
import logging
from importlib.metadata import PackageNotFoundError, version

from tcia_trials.build import build
from tcia_trials.catalog import CatalogEntry, builder_info, catalog
from tcia_trials.errors import (
    AnnotationError,
    DicomReadError,
    DownloadLayoutError,
    InstanceNotFoundError,
    MissingReferenceError,
    MultipleStacksError,
    SeriesGeometryError,
    SeriesNotFoundError,
    StrictBuildError,
    SuvError,
    TciaTrialsError,
    UnknownBuilderError,
    UnsupportedTemplateError,
)
from tcia_trials.registry import builder, list_builders
from tcia_trials.report import ConversionReport
from tcia_trials.source.annotations import (
    Annotations,
    link_annotations,
    read_annotation_file,
    read_annotation_object,
    read_annotations,
)
from tcia_trials.source.index import Index, Instance, Problem, Series, Study, scan
from tcia_trials.source.lesions import Lesion
from tcia_trials.source.volume import Volume, read_volume
from tcia_trials.spec import AnnotationRules
from tcia_trials.verify import VerifyResult, verify

try:
    __version__ = version("tcia-trials")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

logging.getLogger(__name__).addHandler(logging.NullHandler())

if importlib.util.find_spec("tensorflow_datasets") is not None:  # the `tfds` extra
    from tcia_trials import tfds as _tfds

    _tfds.register()  # tfds.load("eay131/lesion_patches", ...) finds the builders

__all__ = [
    "AnnotationError",
    "AnnotationRules",
    "Annotations",
    "CatalogEntry",
    "ConversionReport",
    "DicomReadError",
    "DownloadLayoutError",
    "Index",
    "Instance",
    "InstanceNotFoundError",
    "Lesion",
    "MissingReferenceError",
    "MultipleStacksError",
    "Problem",
    "Series",
    "SeriesGeometryError",
    "SeriesNotFoundError",
    "StrictBuildError",
    "Study",
    "SuvError",
    "TciaTrialsError",
    "UnknownBuilderError",
    "UnsupportedTemplateError",
    "VerifyResult",
    "Volume",
    "__version__",
    "build",
    "builder",
    "builder_info",
    "catalog",
    "link_annotations",
    "list_builders",
    "read_annotation_file",
    "read_annotation_object",
    "read_annotations",
    "read_volume",
    "scan",
    "verify",
]
