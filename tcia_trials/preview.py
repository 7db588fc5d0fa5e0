"""PNG previews of a built dataset: slices through each lesion with its mask and seed point.

Read from the built Parquet shards alone (the DICOM download is not needed), one row group at a
time: the ``volume`` config when it was built, else ``lesion_patches``, else ``slices_2d``.

Display convention (radiological, whatever the series' own axis order): every array is first
put in LPS order by axis permutations and flips only (no resampling; an oblique series is shown
in its nearest orientation), then

- axial: anterior at the top, the patient's right on the image's left;
- coronal: superior at the top, the patient's right on the left;
- sagittal: superior at the top, anterior on the left;

with pixel aspect ``row spacing / col spacing`` so anisotropic voxels are not distorted.

Files (deterministic names; ``<series>`` is the modality and the last 8 characters of the
SeriesInstanceUID)::

    <out_dir>/previews/<patient>/<series>_<lesion_id>.png   one figure per lesion
    <out_dir>/previews/<patient>/<patient>_montage.png      one tile per lesion of the patient
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tcia_trials.errors import PreviewError
from tcia_trials.slices import Window, window_for
from tcia_trials.spec import CT_BONE, CT_LUNG, CT_SOFT_TISSUE, DEFAULT_WINDOWS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

#: Configs a preview can be drawn from, in order of preference.
PREVIEW_CONFIGS = ("volume", "lesion_patches", "slices_2d")
#: Overlay colours (matplotlib names) and the opacity of the filled mask.
MASK_COLOR = "red"  # the lesion of the figure: filled and outlined
OTHER_COLOR = "yellow"  # other lesions of the series: outlined
SEED_COLOR = "lime"  # the seed point: a "+"
MASK_ALPHA = 0.35
#: Figure sizes: inches per panel (lesion figures; at least the title's width) and per tile
#: (montages), resolution.
PANEL_INCHES = 4.0
MIN_FIGURE_INCHES = 7.0
TILE_INCHES = 3.0
MONTAGE_COLUMNS = 4
DPI = 110
#: Patients or lesions listed at most in an error message.
MAX_LISTED = 20

#: The anatomical direction at the (top, bottom, left, right) of each plane's panels.
EDGES = {
    "axial": ("A", "P", "R", "L"),
    "coronal": ("S", "I", "R", "L"),
    "sagittal": ("S", "I", "A", "P"),
}
#: Where the edge letters go: (x, y, horizontal, vertical alignment) in axes fractions.
_EDGE_PLACES = (
    (0.5, 0.99, "center", "top"),
    (0.5, 0.01, "center", "bottom"),
    (0.01, 0.5, "left", "center"),
    (0.99, 0.5, "right", "center"),
)


def lps_axes(direction: np.ndarray) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """The array axes that run nearest to LPS z, y and x, and whether each runs backwards.

    ``direction`` is 3x3 with columns the LPS unit vectors of the array axes (slice, row, col).
    Returns ``(axes, flips)``: ``axes[a]`` is the array axis along LPS component ``2 - a``
    (z = superior, y = posterior, x = left) and ``flips[a]`` is True when it runs the other way.
    The permutation maximises the summed absolute cosines (ties: the first in
    ``itertools.permutations`` order), so oblique series get their nearest orientation.
    """
    cosines = np.abs(np.asarray(direction, dtype=np.float64))
    axes = max(
        itertools.permutations(range(3)),
        key=lambda p: sum(cosines[2 - a, p[a]] for a in range(3)),
    )
    flips = tuple(bool(direction[2 - a][axes[a]] < 0) for a in range(3))
    return axes, flips  # type: ignore[return-value]


def lps_view(array: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``array`` (slice, row, col) as a view in LPS order (z, y, x): index increasing towards
    superior, posterior and the patient's left (see :func:`lps_axes`)."""
    axes, flips = lps_axes(direction)
    view = np.transpose(array, axes)
    return view[tuple(slice(None, None, -1) if flip else slice(None) for flip in flips)]


@dataclass(frozen=True)
class Panel:
    """One 2D slice as displayed: row 0 at the top, column 0 on the left.

    ``image``, ``mask`` (this lesion) and ``others`` (the series' other lesions) are (rows,
    cols); ``seed`` is the fractional (row, col) of the seed point when it lies on the slice;
    ``aspect`` is row spacing / col spacing (matplotlib's ``aspect``); ``edges`` the anatomical
    directions at the (top, bottom, left, right).
    """

    plane: str
    caption: str
    image: np.ndarray
    mask: np.ndarray
    others: np.ndarray
    seed: tuple[float, float] | None
    aspect: float
    edges: tuple[str, str, str, str]


@dataclass(frozen=True)
class LesionVolume:
    """A lesion's image data on one grid, as stored (slice, row, col).

    ``labels`` has the image's shape: bit ``bit`` set where this lesion is, any other bit where
    another lesion of the series is.  ``seed_voxel`` is the fractional (k, j, i) of the seed in
    this grid; ``start`` the voxel index of this grid's (0, 0, 0) in the series (non-zero for
    patches and single slices), used in the captions.
    """

    image: np.ndarray
    labels: np.ndarray
    bit: int
    seed_voxel: tuple[float, float, float] | None
    spacing: tuple[float, float, float]
    direction: np.ndarray
    start: tuple[int, int, int] = (0, 0, 0)


def _round(value: float) -> int:
    return math.floor(value + 0.5)


def lesion_panels(volume: LesionVolume) -> list[Panel]:
    """The panels of one lesion: axial through the seed point, axial where the mask has its
    largest area (when larger than on the seed slice; the most inferior of equal ones), coronal
    and sagittal through the seed.

    Without a seed point (or with one outside the grid) the slices go through the largest-area
    axial slice and the centroid of the mask on it.  Panels with fewer than 2 rows or columns
    (the other planes of a single slice) are left out; a lesion with neither a seed in the grid
    nor mask voxels has no panel.
    """
    axes, flips = lps_axes(volume.direction)
    image = lps_view(volume.image, volume.direction)
    labels = lps_view(volume.labels, volume.direction)
    spacing = [float(volume.spacing[axis]) for axis in axes]
    own = labels.dtype.type(1 << volume.bit)
    areas = np.array([np.count_nonzero(labels[z] & own) for z in range(image.shape[0])])
    largest = int(np.argmax(areas)) if areas.any() else None

    seed = None
    if volume.seed_voxel is not None:
        seed = [
            (n - 1 - volume.seed_voxel[axis]) if flip else volume.seed_voxel[axis]
            for n, axis, flip in zip(image.shape, axes, flips, strict=True)
        ]
        if not all(0 <= _round(v) < n for v, n in zip(seed, image.shape, strict=True)):
            seed = None
    if seed is not None:
        centre = [_round(v) for v in seed]
    elif largest is not None:
        rows, cols = np.nonzero(labels[largest] & own)
        centre = [largest, _round(rows.mean()), _round(cols.mean())]
    else:
        return []

    def panel(a: int, index: int, note: str) -> Panel:
        """The plane across LPS axis ``a`` (0 axial, 1 coronal, 2 sagittal) at ``index``."""
        row_axis, col_axis = (b for b in range(3) if b != a)
        up = slice(None, None, -1) if a else slice(None)  # coronal, sagittal: superior on top
        point = None
        if seed is not None and _round(seed[a]) == index:
            row = seed[row_axis] if a == 0 else image.shape[0] - 1 - seed[0]
            point = (row, seed[col_axis])
        source = (image.shape[a] - 1 - index if flips[a] else index) + volume.start[axes[a]]
        plane = ("axial", "coronal", "sagittal")[a]
        cut = np.take(labels, index, axis=a)[up]
        return Panel(
            plane=plane,
            caption=f"{plane}, {'kji'[axes[a]]} = {source}{note}",
            image=np.take(image, index, axis=a)[up],
            mask=(cut & own) != 0,
            others=(cut & ~own) != 0,
            seed=point,
            aspect=spacing[row_axis] / spacing[col_axis],
            edges=EDGES[plane],
        )

    panels = [panel(0, centre[0], " (seed)" if seed is not None else " (largest area)")]
    if largest is not None and areas[largest] > areas[centre[0]]:
        panels.append(panel(0, largest, " (largest area)"))
    panels += [panel(1, centre[1], ""), panel(2, centre[2], "")]
    return [p for p in panels if min(p.image.shape) >= 2]


def preview_window(modality: str, units: str, location: str | None, image: np.ndarray) -> Window:
    """The display window of a lesion: CT in HU gets the lung window for lesions located in
    the lung, the bone window for bone lesions, soft tissue otherwise; other images get the
    ``slices_2d`` preview window (:func:`tcia_trials.slices.window_for` with the default
    presets: PET SUVbw 0 .. 10, MR the 0.5 .. 99.5 percentiles of ``image``)."""
    if modality == "CT" and units == "HU":
        where = (location or "").upper()
        preset = CT_LUNG if "LUNG" in where else CT_BONE if "BONE" in where else CT_SOFT_TISSUE
        return Window(
            preset.name,
            float(preset.center),  # type: ignore[arg-type]
            float(preset.width),  # type: ignore[arg-type]
        )
    return window_for(modality, units, image, DEFAULT_WINDOWS)


# --- reading the built dataset ---------------------------------------------------------------


@dataclass(frozen=True)
class _Lesion:
    """One lesion of the dataset: who, what, and where its rows are."""

    patient_id: str
    series_uid: str
    time_point: str | None
    modality: str
    units: str
    number: int  # lesion n of its series (bit n of the volume mask; for patches the n-th patch)
    record: dict  # the lesion fields (label, location, volume_ml, seed_voxel, ...)
    rows: tuple[tuple[Path, int, int], ...]  # (shard, row group, row in group)

    @property
    def lesion_id(self) -> str:
        return str(self.record["lesion_id"])

    @property
    def label(self) -> str:
        return str(self.record["label"])


_ID_COLUMNS = ["patient_id", "series_uid", "time_point", "modality", "units"]
_LESION_COLUMNS = ["lesion_id", "label", "location", "volume_ml", "seed_voxel"]


def _config(dataset_dir: Path) -> str:
    """The first of :data:`PREVIEW_CONFIGS` with Parquet shards in ``dataset_dir``."""
    if not dataset_dir.is_dir():
        raise PreviewError(f"{dataset_dir} is not a folder; pass a built dataset (out/<name>)")
    data = dataset_dir / "data"
    if not data.is_dir():
        inside = sorted(str(p.parent) for p in dataset_dir.glob("*/data") if p.is_dir())
        hint = f"; built datasets in it: {', '.join(inside)}" if inside else ""
        raise PreviewError(
            f"{dataset_dir} is not a built dataset (no data/ folder): pass out/<name> as "
            f"written by `tcia-trials build`{hint}"
        )
    for config in PREVIEW_CONFIGS:
        if any((data / config).glob("*.parquet")):
            return config
    built = sorted(p.name for p in data.iterdir() if p.is_dir() and any(p.glob("*.parquet")))
    raise PreviewError(
        f"{dataset_dir}: no config to draw previews from; they need one of "
        f"{', '.join(PREVIEW_CONFIGS)}, but the dataset has {', '.join(built) or 'no config'} "
        "(rebuild with --config volume)"
    )


def _catalog(dataset_dir: Path, config: str) -> tuple[list[_Lesion], list[str]]:
    """Every lesion of ``config`` (patients in file order), and every patient (sorted).

    Reads the id and lesion columns only, one row group at a time; no image.
    """
    columns = [*_ID_COLUMNS, *(["lesions"] if config == "volume" else _LESION_COLUMNS)]
    if config == "slices_2d":
        columns.append("lesion_index")
    found: dict[tuple[str, str], _Lesion] = {}
    per_series: dict[str, int] = {}
    patients: set[str] = set()
    for shard in sorted((dataset_dir / "data" / config).glob("*.parquet")):
        parquet = pq.ParquetFile(shard)
        for group in range(parquet.num_row_groups):
            rows = parquet.read_row_group(group, columns=columns).to_pylist()
            for number_in_group, row in enumerate(rows):
                patients.add(row["patient_id"])
                where = (shard, group, number_in_group)
                for record in row["lesions"] if config == "volume" else [row]:
                    key = (row["series_uid"], record["lesion_id"])
                    if key in found:  # slices_2d: another slice of the same lesion
                        found[key] = replace(found[key], rows=(*found[key].rows, where))
                        continue
                    number = per_series.get(row["series_uid"], 0)
                    per_series[row["series_uid"]] = number + 1
                    found[key] = _Lesion(
                        patient_id=row["patient_id"],
                        series_uid=row["series_uid"],
                        time_point=row["time_point"],
                        modality=row["modality"],
                        units=row["units"],
                        number=row.get("lesion_index", number),
                        record={name: record[name] for name in _LESION_COLUMNS},
                        rows=(where,),
                    )
    lesions = sorted(found.values(), key=lambda lesion: lesion.patient_id)  # stable: file order
    return lesions, sorted(patients)


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:MAX_LISTED])
    return shown + (f", ... ({len(names)} in all)" if len(names) > MAX_LISTED else "")


def _select(
    lesions: list[_Lesion], patients: list[str], patient: str | None, lesion: str | None, where: str
) -> list[_Lesion]:
    """The lesions asked for; an error listing the available ones when there are none."""
    if patient is not None:
        if patient not in patients:
            raise PreviewError(
                f"patient {patient!r} is not in {where}; its patients: {_listing(patients)}"
            )
        lesions = [les for les in lesions if les.patient_id == patient]
    if not lesions:
        whose = f"patient {patient!r}" if patient is not None else "the dataset"
        raise PreviewError(
            f"{whose} has no lesion to draw in {where} (its series are annotated 'no findings')"
        )
    if lesion is not None:
        available = sorted({les.lesion_id for les in lesions} | {les.label for les in lesions})
        lesions = [les for les in lesions if lesion in (les.lesion_id, les.label)]
        if not lesions:
            whose = f"patient {patient!r} in {where}" if patient is not None else where
            raise PreviewError(
                f"lesion {lesion!r} is not in {whose}; its lesions: {_listing(available)}"
            )
    return lesions


class _RowReader:
    """Reads single rows of the shards, keeping the last row group read (one volume)."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self._key: tuple[Path, int] | None = None
        self._table: pa.Table | None = None

    def row(self, shard: Path, group: int, row: int) -> pa.Table:
        if self._key != (shard, group):
            self._table = None  # free the previous row group before reading the next
            self._table = pq.ParquetFile(shard).read_row_group(group, columns=self.columns)
            self._key = (shard, group)
        return self._table.slice(row, 1)  # type: ignore[union-attr]


def _array(table: pa.Table, name: str) -> np.ndarray:
    """The numbers of a one-row list column, flat (zero-copy where Arrow allows)."""
    values = table.column(name).combine_chunks()
    while not pa.types.is_primitive(values.type):
        values = values.storage if isinstance(values, pa.ExtensionArray) else values.flatten()
    return values.to_numpy(zero_copy_only=False)


def _seed(record: dict, start: Sequence[int]) -> tuple[float, float, float] | None:
    seed = record["seed_voxel"]
    if not seed:
        return None
    k, j, i = (float(v) - s for v, s in zip(seed, start, strict=True))
    return k, j, i


_READ_COLUMNS = {
    "volume": ["image", "image_shape", "mask", "spacing", "direction"],
    "lesion_patches": ["patch", "patch_shape", "patch_mask", "patch_start", "spacing", "direction"],
    "slices_2d": ["image", "image_shape", "mask", "labels", "pixel_spacing", "direction"],
}


def _volumes(config: str, lesion: _Lesion, reader: _RowReader) -> Iterator[LesionVolume]:
    """The lesion's image data: the whole series (volume), its patch (lesion_patches), or its
    seed slice and largest-area slice (slices_2d)."""
    if config == "slices_2d":
        slices = []
        for shard, group, row in lesion.rows:
            table = reader.row(shard, group, row)
            shape = (1, *_array(table, "image_shape"))
            mask = _array(table, "mask").reshape(shape).astype(np.uint8)
            others = (_array(table, "labels").reshape(shape) != 0) & (mask == 0)
            k = int(table.column("slice_index")[0].as_py())
            row_spacing, col_spacing = _array(table, "pixel_spacing")
            volume = LesionVolume(
                image=_array(table, "image").reshape(shape),
                labels=mask | (others.astype(np.uint8) << 1),  # bit 0: this lesion
                bit=0,
                seed_voxel=_seed(lesion.record, (k, 0, 0)),
                spacing=(1.0, float(row_spacing), float(col_spacing)),  # 1.0: one slice, unused
                direction=_array(table, "direction").reshape(3, 3),
                start=(k, 0, 0),
            )
            slices.append((k, int(np.count_nonzero(mask)), volume))
        seed = lesion.record["seed_voxel"]
        seed_k = _round(seed[0]) if seed else None
        largest = max(slices, key=lambda s: (s[1], -s[0]))
        for k, _area, volume in slices:
            if k == seed_k or volume is largest[2]:
                yield volume
        return
    ((shard, group, row),) = lesion.rows
    table = reader.row(shard, group, row)
    direction = _array(table, "direction").reshape(3, 3)
    spacing = tuple(float(v) for v in _array(table, "spacing"))
    if config == "volume":
        shape = tuple(_array(table, "image_shape"))
        yield LesionVolume(
            image=_array(table, "image").reshape(shape),
            labels=_array(table, "mask").reshape(shape),
            bit=lesion.number,
            seed_voxel=_seed(lesion.record, (0, 0, 0)),
            spacing=spacing,  # type: ignore[arg-type]
            direction=direction,
        )
        return
    shape = tuple(_array(table, "patch_shape"))
    start = tuple(int(v) for v in _array(table, "patch_start"))
    yield LesionVolume(
        image=_array(table, "patch").reshape(shape),
        labels=_array(table, "patch_mask").reshape(shape),
        bit=0,
        seed_voxel=_seed(lesion.record, start),
        spacing=spacing,  # type: ignore[arg-type]
        direction=direction,
        start=start,  # type: ignore[arg-type]
    )


# --- drawing ---------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    """A matplotlib figure on the Agg canvas (no screen, no pyplot state)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "previews are drawn with matplotlib, which is not installed: "
            "pip install 'tcia-trials[preview]' (or pip install matplotlib)"
        ) from exc
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def draw_panel(ax: Axes, panel: Panel, window: Window, modality: str) -> None:
    """One panel: windowed grey (PET inverted), this lesion filled and outlined in red, other
    lesions outlined in yellow, the seed as a green "+", orientation letters at the edges."""
    ax.imshow(
        panel.image,
        cmap="gray_r" if modality == "PT" else "gray",
        vmin=window.low,
        vmax=window.high,
        aspect=panel.aspect,
        interpolation="nearest",
    )
    if panel.others.any():
        ax.contour(panel.others, levels=[0.5], colors=[OTHER_COLOR], linewidths=0.8)
    if panel.mask.any():
        overlay = np.zeros((*panel.mask.shape, 4))
        overlay[panel.mask] = (1.0, 0.0, 0.0, MASK_ALPHA)
        ax.imshow(overlay, aspect=panel.aspect, interpolation="nearest")
        ax.contour(panel.mask, levels=[0.5], colors=[MASK_COLOR], linewidths=1.0)
    if panel.seed is not None:
        row, col = panel.seed
        ax.plot(col, row, marker="+", color=SEED_COLOR, markersize=14, markeredgewidth=1.5)
    rows, cols = panel.image.shape
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    box = {"facecolor": "black", "alpha": 0.6, "pad": 1.0, "edgecolor": "none"}
    for letter, (x, y, ha, va) in zip(panel.edges, _EDGE_PLACES, strict=True):
        ax.text(x, y, letter, transform=ax.transAxes, ha=ha, va=va, color="white", bbox=box)
    ax.set_xticks([])
    ax.set_yticks([])


def _header(lesion: _Lesion) -> str:
    volume = lesion.record["volume_ml"]
    size = f"{volume:.1f} mL" if volume is not None else "no volume"
    return f"{lesion.time_point or 'no time point'} | {lesion.modality} | {lesion.label} | {size}"


def lesion_figure(
    lesion_title: str, panels: Sequence[Panel], window: Window, modality: str
) -> Figure:
    """The figure of one lesion: its panels side by side under ``lesion_title``."""
    figure = _figure(max(PANEL_INCHES * len(panels), MIN_FIGURE_INCHES), PANEL_INCHES + 0.8)
    for ax, panel in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        draw_panel(ax, panel, window, modality)
        ax.set_title(panel.caption, fontsize=10)
    figure.suptitle(lesion_title, fontsize=11)
    return figure


def montage_figure(title: str, tiles: Sequence[tuple[str, Panel, Window, str]]) -> Figure:
    """One tile per ``(caption, panel, window, modality)``, :data:`MONTAGE_COLUMNS` a row."""
    columns = min(MONTAGE_COLUMNS, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    figure = _figure(TILE_INCHES * columns, (TILE_INCHES + 0.5) * rows + 0.4)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (caption, panel, window, modality) in zip(axes, tiles, strict=False):
        draw_panel(ax, panel, window, modality)
        ax.set_title(caption, fontsize=8)
    for ax in axes[len(tiles) :]:
        ax.set_axis_off()
    figure.suptitle(title, fontsize=11)
    return figure


def _safe(name: str) -> str:
    """A file-name-safe version of an id: runs of other characters become "_"."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_") or "_"


def write_previews(
    dataset_dir: str | PathLike[str],
    *,
    patient: str | None = None,
    lesion: str | None = None,
    out_dir: str | PathLike[str] | None = None,
) -> list[Path]:
    """Write PNG previews of a built dataset and return their paths.

    Parameters
    ----------
    dataset_dir:
        A built dataset folder (``out/<name>``, with ``data/<config>/*.parquet``); drawn from
        its ``volume`` config, else ``lesion_patches``, else ``slices_2d``.
    patient:
        A PatientID; every patient by default.
    lesion:
        A lesion_id or label (e.g. ``"LIVER - 1"``); every lesion by default.  Patient montages
        are written only without ``lesion``.
    out_dir:
        Where ``previews/`` goes; ``dataset_dir`` by default.

    One figure per lesion (see the module docstring for the panels, colours and orientation)
    and, without ``lesion``, a montage per patient with one tile per lesion (its first panel).
    Lesions with neither a seed point nor mask voxels are skipped with a warning.  Raises
    :class:`~tcia_trials.errors.PreviewError` for a folder that is not a built dataset, one
    without any of :data:`PREVIEW_CONFIGS`, and an unknown patient or lesion (the message lists
    the available ones).
    """
    dataset_dir = Path(dataset_dir).expanduser()
    config = _config(dataset_dir)
    lesions, patients = _catalog(dataset_dir, config)
    chosen = _select(lesions, patients, patient, lesion, f"{dataset_dir} ({config} config)")
    root = Path(out_dir).expanduser() if out_dir is not None else dataset_dir
    columns = _READ_COLUMNS[config] + (["slice_index"] if config == "slices_2d" else [])
    reader = _RowReader(columns)
    written: list[Path] = []
    for patient_id, group in itertools.groupby(chosen, key=lambda les: les.patient_id):
        folder = root / "previews" / _safe(patient_id)
        tiles: list[tuple[str, Panel, Window, str]] = []
        for item in group:
            panels = [p for volume in _volumes(config, item, reader) for p in lesion_panels(volume)]
            if not panels:
                logger.warning(
                    "%s %s: no seed point in the image and no mask voxels; no preview",
                    item.series_uid,
                    item.lesion_id,
                )
                continue
            window = preview_window(
                item.modality, item.units, item.record["location"], panels[0].image
            )
            units = f" {item.units}" if item.units else ""
            series = f"{_safe(item.modality)}-{item.series_uid[-8:]}"
            title = (
                f"{patient_id} | {_header(item)}\n"
                f"series {series} | window {window.name} {window.low:g} .. {window.high:g}{units}"
            )
            path = folder / f"{series}_{_safe(item.lesion_id)}.png"
            if path in written:  # two lesion ids that differ only in unsafe characters
                path = path.with_name(f"{path.stem}-{item.number}.png")
            folder.mkdir(parents=True, exist_ok=True)
            lesion_figure(title, panels, window, item.modality).savefig(path)
            written.append(path)
            tiles.append((_header(item).replace(" | ", "\n", 1), panels[0], window, item.modality))
        if lesion is None and tiles:
            path = folder / f"{_safe(patient_id)}_montage.png"
            montage_figure(f"{patient_id}: {len(tiles)} lesion(s)", tiles).savefig(path)
            written.append(path)
    if root == dataset_dir and any(p.name.endswith("_montage.png") for p in written):
        _refresh_card(dataset_dir)
    return written


def _refresh_card(dataset_dir: Path) -> None:
    """Re-render the dataset's card so that it shows a preview montage."""
    from tcia_trials import cards
    from tcia_trials.build import built_spec

    spec = built_spec(dataset_dir)
    cards.write_card(dataset_dir, spec, None if dataset_dir.name == spec.name else dataset_dir.name)
