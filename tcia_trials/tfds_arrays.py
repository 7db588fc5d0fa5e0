"""Random access to chosen features of an array_record TFDS dataset, decoding only those.

TFDS's ``builder.as_data_source(split)`` decodes every feature of an example, one by one in
Python (about 20 us a feature: 1-1.4 ms for a ``lesion_patches`` example of 57 features,
three times the ``np.load`` of its two arrays), and TFDS 4.9 rejects ``PartialDecoding`` there.
:func:`array_source` reads the same records (``deserialize_method=RAW_BYTES``), parses each
once and decodes only the named features with their own TFDS feature connectors
(``decode_example_np``), so its values equal ``as_data_source``'s. No TensorFlow is needed.

    source = array_source("synthetic_trial/lesion_patches", "train", data_dir=DATA)
    patch, patch_mask = source[0]["patch"], source[0]["patch_mask"]
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import Any, SupportsIndex

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.proto import tf_example_pb2

from tcia_trials.errors import TciaTrialsError

F = tfds.features


class ArraySource(Sequence[dict[str, Any]]):
    """The named features of every example of one split, by index (``len``, ``source[i]``,
    and ``source.__getitems__(indices)``, which PyTorch and Grain loaders call)."""

    def __init__(self, records: Sequence[bytes], features: dict[str, Any]) -> None:
        self._records = records
        self._features = features
        self._infos = {name: f.get_serialized_info() for name, f in features.items()}

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: SupportsIndex) -> dict[str, Any]:  # type: ignore[override]
        return self._decode(self._records[operator.index(index)])

    def __getitems__(self, indices: Iterable[int]) -> list[dict[str, Any]]:
        return [self._decode(record) for record in self._records.__getitems__(list(indices))]

    def _decode(self, record: bytes) -> dict[str, Any]:
        stored = tf_example_pb2.Example.FromString(record).features.feature
        return {
            name: feature.decode_example_np(_stored_data(stored, name, self._infos[name]))
            for name, feature in self._features.items()
        }


def array_source(
    dataset: str | tfds.core.DatasetBuilder,
    split: str,
    features: Sequence[str] | None = None,
    *,
    data_dir: str | None = None,
) -> ArraySource:
    """The ``features`` (default: the config's ``supervised_keys``, e.g. ``patch`` and
    ``patch_mask``) of ``split`` of an array_record dataset: a builder, or a name such as
    ``"eay131/lesion_patches"`` prepared under ``data_dir``."""
    builder = tfds.builder(dataset, data_dir=data_dir) if isinstance(dataset, str) else dataset
    info = builder.info
    names = list(features or info.supervised_keys or ())
    if not names:
        raise TciaTrialsError(f"{info.full_name}: name the features to read")
    available = dict(info.features.items())
    selected = {}
    for name in names:
        feature = available.get(name)
        if not isinstance(feature, F.Tensor):  # Tensor, Scalar and Text; not lists or images
            raise TciaTrialsError(
                f"{info.full_name}: {name!r} is not an array, scalar or text feature of this "
                f"config; read it with builder.as_data_source() (array features: "
                f"{', '.join(n for n, f in available.items() if isinstance(f, F.Tensor))})"
            )
        selected[name] = feature
    records = builder.as_data_source(
        split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES
    )
    return ArraySource(records, selected)


def _stored_data(stored: Any, name: str, info: Any) -> Any:
    """What TFDS's numpy parser hands a feature's ``decode_example_np``: the values of its
    ``tf.train.Example`` key, or of ``name/value`` and ``name/shape`` for variable shapes."""
    if isinstance(info, dict):
        return {part: _values(stored[f"{name}/{part}"], i) for part, i in info.items()}
    return _values(stored[name], info)


def _values(stored: Any, info: Any) -> Any:
    """The values of one ``tf.train.Feature``, as TFDS's numpy parser returns them."""
    kind = stored.WhichOneof("kind")
    values = getattr(stored, kind).value
    if kind == "bytes_list" and not info.shape:
        return values[0]  # one bytes value (an encoded array or a text): no numpy copy
    array = np.array(values, dtype=info.np_dtype)
    if not info.shape:
        return array.item()
    return array.reshape(tuple(-1 if d is None else d for d in info.shape))
