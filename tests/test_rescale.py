"""The in-place integer rescale (HU as int16) against plain int64 arithmetic."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tcia_trials.source.volume import _add_integer_intercepts


@settings(max_examples=200, deadline=None)
@given(
    signed=st.booleans(),
    bits_stored=st.integers(8, 16),
    intercepts=st.lists(st.integers(-40000, 40000), min_size=1, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_integer_rescale_is_exact(signed, bits_stored, intercepts, seed):
    rng = np.random.default_rng(seed)
    low, high = (
        (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1)) if signed else (0, 2**bits_stored)
    )
    raw = rng.integers(low, high, size=(len(intercepts), 4, 5)).astype(
        np.int16 if signed else np.uint16
    )
    expected = raw.astype(np.int64) + np.array(intercepts)[:, None, None]
    result = _add_integer_intercepts(raw.copy(), np.array(intercepts, dtype=np.int64), bits_stored)
    np.testing.assert_array_equal(result, expected)
    fits = expected.min() >= -32768 and expected.max() <= 32767
    assert result.dtype == (np.int16 if fits else np.int32)
