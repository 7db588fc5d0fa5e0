"""tcia-trials: labeled TCIA clinical-trial collections as ML-ready datasets.

The public interface: index a download with :func:`scan`, read an image series with
:func:`read_volume`.  Errors derive from :class:`TciaTrialsError`.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from tcia_trials.errors import (
    DicomReadError,
    DownloadLayoutError,
    InstanceNotFoundError,
    MultipleStacksError,
    SeriesGeometryError,
    SeriesNotFoundError,
    SuvError,
    TciaTrialsError,
)
from tcia_trials.source.index import Index, Instance, Problem, Series, Study, scan
from tcia_trials.source.volume import Volume, read_volume

try:
    __version__ = version("tcia-trials")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "DicomReadError",
    "DownloadLayoutError",
    "Index",
    "Instance",
    "InstanceNotFoundError",
    "MultipleStacksError",
    "Problem",
    "Series",
    "SeriesGeometryError",
    "SeriesNotFoundError",
    "Study",
    "SuvError",
    "TciaTrialsError",
    "Volume",
    "__version__",
    "read_volume",
    "scan",
]
