"""TensorFlow Datasets output: every builder's spec as a registered ``GeneratorBasedBuilder``.

``import tcia_trials`` registers one TFDS builder per spec (when ``tensorflow_datasets`` is
installed), so ``tfds.load("eay131/lesion_patches", data_dir=..., download_and_prepare_kwargs=
{"download_config": tfds.download.DownloadConfig(manual_dir=SOURCE)})`` builds and loads it.
The builder classes are derived from the specs; their features are rendered from the same
neutral schema as the HuggingFace output, and their examples come from the same generators
(:mod:`tcia_trials.examples`), so both formats hold the same content.

How the neutral schema becomes TFDS features:

- variable-shape arrays (whole volumes, slices) keep their shape: ``Tensor`` with unknown
  dimensions, stored as raw bytes (images: ``Encoding.BYTES``) or zlib-compressed bytes
  (unsigned masks and label maps, mostly zeros: ``Encoding.ZLIB``); fixed-shape patches and
  their masks keep their shape, as raw bytes; chosen by measurement (README "Benchmarks");
  float64 values are always stored as bytes (a ``tf.train.Example`` holds only int64 and
  float32 numbers);
- TensorFlow cannot decode ``uint32``/``uint64`` bytes, so those arrays (the volume config's
  lesion bitmask) hold the same bits as ``int32``/``int64``: ``(mask >> n) & 1`` is lesion n
  for every n (the shift is arithmetic), and ``mask.view(np.uint32)`` gives the stored values;
- lists of lesions are ``Sequence`` features; string lists inside them are nested ``Sequence``;
- TFDS has no nulls: a nullable value is stored as a sentinel (:data:`SENTINELS`: NaN for
  floats, -1 for integers, "" for strings, False for booleans) next to a boolean
  ``<name>_present`` that is False exactly where the HuggingFace dataset holds null; points
  that may be absent (seed points, bounding boxes: empty lists in the HuggingFace dataset) are
  fixed-length vectors filled with the sentinel, with their ``<name>_present`` flag.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import logging
import re
from collections.abc import Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds

from tcia_trials import examples as ex
from tcia_trials.cards import citations, tfds_tags
from tcia_trials.errors import TciaTrialsError
from tcia_trials.prepare import Prepared, clinical_table, patch_shape, prepare
from tcia_trials.registry import builder as spec_of
from tcia_trials.registry import list_builders
from tcia_trials.schema import Field, config_fields
from tcia_trials.source.annotations import read_lesions_without_images
from tcia_trials.spec import StackPolicy, TrialSpec

F = tfds.features
logger = logging.getLogger(__name__)

#: Configs a TFDS builder offers (those this version builds).
TFDS_CONFIGS = ("volume", "lesions", "lesion_patches", "slices_2d", "clinical")
#: TFDS file formats: TFRecord (TensorFlow needed to write and ``tfds.load``) and array_record
#: (random access with ``builder.as_data_source()``, no TensorFlow needed).
FILE_FORMATS = ("tfrecord", "array_record")
#: Values standing for "missing" (TFDS has no nulls), by kind; see ``<name>_present``.
SENTINELS = {"float": float("nan"), "int": -1, "string": "", "bool": False}
#: Suffix of the presence flag of a nullable field.
PRESENT = "_present"
#: Dtypes TensorFlow cannot decode from bytes, and the signed dtype of the same width their
#: bits are stored as (a view: lossless, and bit operations give the same planes).
REINTERPRETED = {"uint32": "int32", "uint64": "int64"}
#: Fixed-shape tensors with more values than this are stored as bytes, not number lists.
MAX_UNENCODED_VALUES = 64
#: ``supervised_keys`` (input, target) per config, for ``as_supervised=True``.
SUPERVISED_KEYS = {
    "volume": ("image", "mask"),
    "lesion_patches": ("patch", "patch_mask"),
    "slices_2d": ("image", "mask"),
}


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------


def tfds_dtype(field: Field) -> np.dtype:
    """The numpy dtype TFDS stores ``field`` with (see :data:`REINTERPRETED`)."""
    if field.dtype == "string":
        return np.dtype(object)
    return np.dtype(REINTERPRETED.get(field.dtype, field.dtype))


def _encoding(field: Field) -> F.Encoding:
    """How an array field is stored: float64 always as bytes (a ``tf.train.Example`` holds
    numbers as int64 or float32 only: unencoded float64 would lose precision); variable-shape
    unsigned arrays (volume masks and label maps: mostly zeros, up to GBs) as zlib-compressed
    bytes; other large arrays (images, patches, patch masks: inflating a patch mask costs more
    than reading it raw) as raw bytes; small integer and float32 vectors as number lists."""
    dtype = np.dtype(field.dtype)
    values = int(np.prod(field.shape)) if field.is_fixed_tensor else None
    if dtype.kind in "ub" and values is None:
        return F.Encoding.ZLIB
    if dtype == np.float64 or values is None or values > MAX_UNENCODED_VALUES:
        return F.Encoding.BYTES
    return F.Encoding.NONE


def tfds_feature(field: Field, *, nested: bool = False) -> Any:
    """The TFDS feature of one neutral field (``nested``: inside a list of records)."""
    if field.is_records:
        return F.Sequence(tfds_features(field.fields, nested=True))
    if field.is_record:
        return tfds_features(field.fields, nested=nested)
    if field.dtype == "image":
        return F.Image(shape=(None, None, 3), encoding_format="png")
    if field.dtype == "string":
        return F.Sequence(F.Text()) if field.is_list else F.Text()
    dtype = tfds_dtype(field)
    if field.length is not None:  # empty or a point: fixed length + presence flag
        return F.Tensor(shape=(field.length,), dtype=dtype, encoding=_encoding(field))
    if field.is_list or (field.is_flat_tensor and len(field.shape) == 1):
        if dtype == np.float64:
            raise TypeError(f"{field.name}: variable-length float64 lists have no lossless form")
        return F.Sequence(F.Scalar(dtype=dtype))
    if field.is_flat_tensor and nested:
        raise TypeError(f"{field.name}: variable-shape arrays inside records are not supported")
    shape = (None,) * len(field.shape) if field.is_flat_tensor else field.shape
    return F.Tensor(shape=shape, dtype=dtype, encoding=_encoding(field))


def tfds_features(fields: tuple[Field, ...], *, nested: bool = False) -> F.FeaturesDict:
    """A ``FeaturesDict`` of fields, with a ``<name>_present`` flag next to each nullable one."""
    features: dict[str, Any] = {}
    for field in fields:
        if "/" in field.name:
            raise TciaTrialsError(
                f"feature name {field.name!r}: TFDS feature names cannot contain '/'; rename "
                "the column (e.g. in the clinical sheet)"
            )
        features[field.name] = tfds_feature(field, nested=nested)
        if field.nullable or field.length is not None:
            features[field.name + PRESENT] = F.Scalar(dtype=np.bool_)
    return F.FeaturesDict(features)


def sentinel(field: Field) -> object:
    """The stand-in for a missing value of a nullable scalar field."""
    if field.dtype == "string":
        return SENTINELS["string"]
    kind = np.dtype(field.dtype).kind
    return SENTINELS["bool" if kind == "b" else "float" if kind == "f" else "int"]


def encode(fields: tuple[Field, ...], example: Mapping[str, object]) -> dict[str, object]:
    """A neutral example as TFDS feature values (sentinels + presence flags for nulls)."""
    encoded: dict[str, object] = {}
    for field in fields:
        value = example.get(field.name)
        if field.nullable:
            encoded[field.name + PRESENT] = value is not None
            if value is None:
                value = sentinel(field)
        elif field.length is not None:
            encoded[field.name + PRESENT] = len(value) > 0  # type: ignore[arg-type]
            if not len(value):  # type: ignore[arg-type]
                value = [sentinel(field)] * field.length
        if field.is_records:
            value = [encode(field.fields, item) for item in value or []]  # type: ignore[union-attr]
        elif field.is_record:
            value = encode(field.fields, value or {})  # type: ignore[arg-type]
        elif field.dtype == "image":
            value = io.BytesIO(value)  # type: ignore[arg-type]  # PNG bytes, stored as they are
        elif field.dtype == "string":
            value = np.asarray(list(value), dtype=object) if field.is_list else value  # type: ignore[arg-type]
        elif field.shape or field.is_list:
            value = np.asarray(value, dtype=field.dtype).view(tfds_dtype(field))
        encoded[field.name] = value
    return encoded


# ---------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------


def static_image_dtype(spec: TrialSpec) -> str:
    """The image dtype known before reading a download: int16 (HU) when the spec reads CT
    only, else float32 (lossless for int16, uint16 and float32 values alike)."""
    return "int16" if spec.modalities and set(spec.modalities) == {"CT"} else "float32"


class TrialBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A TFDS builder made from a :class:`~tcia_trials.spec.TrialSpec` (see :func:`register`).

    Keyword arguments besides TFDS's own (``data_dir``, ``config``, ``file_format``, ...):

    source:
        The download folder (default: TFDS's ``manual_dir``).
    clinical, patient_column:
        The clinical sheet and its patient-id column, for collections whose clinical data the
        user supplies (``tt.build``'s arguments of the same names).
    image_dtype:
        Fix the image dtype (default: :func:`static_image_dtype`).
    stacks:
        The stack policy of multi-stack series ("each", "index:N", "b_value=800", ...;
        ``tt.build``'s argument of the same name; default: the spec's).
    num_proc:
        Worker processes reading series (the output is identical).
    """

    SPEC: ClassVar[TrialSpec]

    def __init__(
        self,
        *,
        source: str | PathLike[str] | None = None,
        clinical: str | PathLike[str] | None = None,
        patient_column: str | None = None,
        image_dtype: str | None = None,
        stacks: str | None = None,
        num_proc: int = 1,
        prepared: Prepared | None = None,
        **kwargs: Any,
    ) -> None:
        self._source = Path(source).expanduser() if source is not None else None
        self._clinical = clinical
        self._patient_column = patient_column
        self._image_dtype = image_dtype
        self._stacks = (
            self.SPEC.stack_policy if stacks is None else StackPolicy.parse(stacks, owner="tfds")
        )
        self._num_proc = num_proc
        self._prepared = prepared
        self._use_beam = False
        super().__init__(**kwargs)

    @classmethod
    def get_metadata(cls) -> tfds.core.dataset_metadata.DatasetMetadata:
        spec = cls.SPEC
        return tfds.core.dataset_metadata.DatasetMetadata(
            description=spec.description, citation=citations(spec), tags=tfds_tags(spec)
        )

    def neutral_fields(self) -> tuple[Field, ...]:
        """The neutral fields of this config, for the download the builder was given."""
        if self._prepared is not None:
            return self._prepared.fields(self.builder_config.name)
        table = clinical_table(self.SPEC, self._source, self._clinical, self._patient_column)
        clinical = self.SPEC.clinical
        if table is not None:
            types = table.schema()
        elif clinical.source == "tcia":  # the sheet is in the download: its declared columns
            types = clinical.column_types
        else:
            types = {}
        return config_fields(
            self.builder_config.name,
            image_dtype=self._image_dtype or static_image_dtype(self.SPEC),
            patch_shape=patch_shape(self.SPEC),
            clinical=types,
            stacks=self._stacks.has_stack_fields,
        )

    def _info(self) -> tfds.core.DatasetInfo:
        # a build's own spec carries the license and citation given at build time (generic)
        spec = self._prepared.spec if self._prepared is not None else self.SPEC
        config = self.builder_config.name
        return tfds.core.DatasetInfo(
            builder=self,
            description=spec.description,
            features=(None if self._prepared else self._restored_features())
            or tfds_features(self.neutral_fields()),
            supervised_keys=SUPERVISED_KEYS.get(config),
            homepage=spec.homepage,
            citation=spec.citation,
            license=spec.license_summary(),
        )

    def _restored_features(self) -> F.FeaturesDict | None:
        """The features of an already prepared dataset (they follow its download)."""
        path = Path(self.data_path)
        if (path / "features.json").is_file():
            return F.FeatureConnector.from_config(str(path))
        return None

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        config = self.builder_config.name
        prepared = self._prepared or prepare(
            self.SPEC,
            self._source or Path(dl_manager.manual_dir),
            clinical=self._clinical,
            patient_column=self._patient_column,
            image_dtype=self._image_dtype or static_image_dtype(self.SPEC),
            stacks=str(self._stacks),
            configs=(config,),
        )
        fields = prepared.fields(config)
        if fields != self.neutral_fields():
            expected = tfds_features(fields).get_serialized_info().keys()
            raise TciaTrialsError(
                f"{self.name}/{config}: the download's features ({', '.join(sorted(expected))}) "
                "differ from those the builder was created with; pass the download folder and "
                "clinical sheet when creating it (tfds.load(..., builder_kwargs={'source': DIR, "
                "'clinical': SHEET}))"
            )
        if self._use_beam and config != "clinical":
            return {
                split: _beam_examples(prepared, config, series, fields)
                for split, series in _series_by_split(prepared, config).items()
                if config in ("volume", "lesions") or _has_lesions(prepared, series)
            }
        generators = {}
        for split in self.SPEC.splits.names:  # TFDS refuses empty splits, HF has none either
            examples = self._generate_examples(prepared, split, fields)
            first = next(examples, None)
            if first is not None:
                generators[split] = itertools.chain([first], examples)
        return generators

    def _download_and_prepare(
        self, dl_manager: tfds.download.DownloadManager, download_config: Any = None
    ) -> None:
        if self.info.file_format == tfds.core.FileFormat.TFRECORD:
            require_tensorflow("TFRecord shards")
        self._use_beam = download_config is not None and (
            download_config.beam_runner is not None or download_config.beam_options is not None
        )
        super()._download_and_prepare(dl_manager, download_config)

    def _generate_examples(
        self, prepared: Prepared, split: str, fields: tuple[Field, ...]
    ) -> Iterator[tuple[str, dict[str, object]]]:
        config = self.builder_config.name
        ctx = prepared.ctx
        if config == "clinical":
            for key, example_split, example in ex.clinical_examples(
                ctx, prepared.patients_with_images
            ):
                if example_split == split:
                    yield key, encode(fields, example)
            return
        series = _series_by_split(prepared, config).get(split, [])
        examples = ex.iter_examples(ctx, (config,), num_proc=self._num_proc, series=series)
        for _config, (key, _split, example) in examples:
            yield key, encode(fields, example)


def _series_by_split(prepared: Prepared, config: str) -> dict[str, list[str]]:
    """The series whose examples ``config`` makes, per split, in the examples' order."""
    ctx = prepared.ctx
    by_split: dict[str, list[str]] = {}
    for uid in ctx.series_for((config,)):
        by_split.setdefault(ctx.split(ctx.owner(uid)[0]), []).append(uid)
    return by_split


def _has_lesions(prepared: Prepared, series: list[str]) -> bool:
    """Whether any of the series has a lesion (read from its annotations alone, stopping at the
    first): TFDS refuses a split without examples, and Beam cannot tell before running."""
    ctx = prepared.ctx
    return any(
        read_lesions_without_images(
            ctx.index, uid, rules=ctx.rules, labels=ctx.labels, links=ctx.links
        ).lesions
        for uid in series
    )


def _beam_examples(prepared: Prepared, config: str, series: list[str], fields: tuple[Field, ...]):
    """A Beam transform making the split's examples, one series per element (TFDS runs it on
    the runner of ``DownloadConfig(beam_runner=..., beam_options=...)``)."""
    import apache_beam as beam

    return beam.Create(series) | f"{config} examples" >> beam.FlatMap(
        _encoded_examples_of_series, ctx=prepared.ctx, config=config, fields=fields
    )


def _encoded_examples_of_series(
    series_uid: str, *, ctx: ex.ExampleContext, config: str, fields: tuple[Field, ...]
) -> Iterator[tuple[str, dict[str, object]]]:
    """One series' examples of ``config``, encoded.  What cannot be converted is logged as a
    warning naming the series and the reason, and counted in the Beam counter
    ``tcia_trials/skipped`` (Beam workers have no conversion report to record it in)."""
    import apache_beam as beam

    _uid, results, _notes = ex.examples_of_series(ctx, (config,), series_uid)
    for _config, examples, skips in results:
        for what, why in skips:
            logger.warning("skipped %s (%s): %s", what, config, why)
            beam.metrics.Metrics.counter("tcia_trials", "skipped").inc()
        for key, _split, example in examples:
            yield key, encode(fields, example)


def require_tensorflow(what: str) -> None:
    """A clear error when TensorFlow is missing."""
    if importlib.util.find_spec("tensorflow") is None:
        raise TciaTrialsError(
            f"{what} need TensorFlow: pip install 'tcia-trials[tf]' (tensorflow-cpu), or use "
            "file_format='array_record', which needs no TensorFlow (read it with "
            "builder.as_data_source())"
        )


_CLASSES: dict[str, type[TrialBuilder]] = {}


def builder_class(spec: TrialSpec) -> type[TrialBuilder]:
    """The registered TFDS builder class of ``spec`` (created on first use)."""
    if spec.name not in _CLASSES:
        configs = [c for c in spec.configs if c.name in TFDS_CONFIGS]
        _CLASSES[spec.name] = type(
            "".join(part.title() for part in re.split(r"_", spec.name)),
            (TrialBuilder,),
            {
                "__module__": __name__,
                "__doc__": f"{spec.title} (tcia-trials builder ``{spec.name}``).",
                "name": spec.name,
                "SPEC": spec,
                "VERSION": tfds.core.Version(spec.version),
                "RELEASE_NOTES": dict(spec.release_notes),
                "BUILDER_CONFIGS": [
                    tfds.core.BuilderConfig(name=c.name, description=c.description) for c in configs
                ],
                "MANUAL_DOWNLOAD_INSTRUCTIONS": _manual_instructions(spec),
            },
        )
    return _CLASSES[spec.name]


def _manual_instructions(spec: TrialSpec) -> str:
    """The spec's download steps, and where TFDS takes the folder."""
    example = next(iter(re.findall(r"--source\s+(\S+)", spec.manual_download_instructions)), "DIR")
    return (
        f"{spec.manual_download_instructions.rstrip()}\n"
        f'For TFDS, pass that folder as the manual dir: tfds.load("{spec.name}/<config>", '
        'data_dir=..., download_and_prepare_kwargs={"download_config": '
        f'tfds.download.DownloadConfig(manual_dir="{example}")}}).'
    )


def register() -> list[str]:
    """Register every builder with TFDS (idempotent); returns their names."""
    return [builder_class(spec_of(name)).name for name in list_builders()]


def write_tfds(
    prepared: Prepared,
    configs: tuple[str, ...],
    data_dir: str | PathLike[str],
    *,
    file_format: str = "tfrecord",
    num_proc: int = 1,
) -> dict[str, dict[str, int]]:
    """Write ``configs`` of a prepared download as TFDS datasets under ``data_dir`` (what
    ``tfds.load(f"{name}/{config}", data_dir=data_dir)`` reads); returns examples per split."""
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format {file_format!r}: expected one of {FILE_FORMATS}")
    cls = builder_class(prepared.spec)
    counts: dict[str, dict[str, int]] = {}
    for config in configs:
        tfds_builder = cls(
            config=config,
            data_dir=str(data_dir),
            file_format=file_format,
            prepared=prepared,
            num_proc=num_proc,
        )
        tfds_builder.download_and_prepare(  # regenerate: never reuse an earlier build's data
            download_config=tfds.download.DownloadConfig(
                manual_dir=str(prepared.source),
                download_mode=tfds.download.GenerateMode.FORCE_REDOWNLOAD,
            )
        )
        counts[config] = {
            name: split.num_examples for name, split in tfds_builder.info.splits.items()
        }
    return counts
