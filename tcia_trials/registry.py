"""The builder registry: one module per trial collection in :mod:`tcia_trials.builders`.

A builder is a module holding ``SPEC = TrialSpec(...)`` (data only); its name is the module name.
Names are looked up case-insensitively with ``-`` and ``_`` interchangeable, so ``"EAY131"``,
``"acrin-6698"`` and ``"acrin_6698"`` all work.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from functools import cache

from tcia_trials.errors import TciaTrialsError, UnknownBuilderError
from tcia_trials.spec import TrialSpec

_PACKAGE = "tcia_trials.builders"
#: How many close matches an unknown-name error suggests.
_MAX_SUGGESTIONS = 5
#: difflib similarity a name needs to be suggested (0..1).
_SUGGESTION_CUTOFF = 0.6


def normalize_name(name: str) -> str:
    """The registry key of a name: stripped, lower case, ``-`` and spaces as ``_``."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


@cache
def _module_names() -> tuple[str, ...]:
    package = importlib.import_module(_PACKAGE)
    return tuple(
        sorted(
            info.name
            for info in pkgutil.iter_modules(package.__path__)
            if not info.ispkg and not info.name.startswith("_")
        )
    )


def list_builders() -> list[str]:
    """Names of all builders, sorted (the modules of :mod:`tcia_trials.builders`)."""
    return list(_module_names())


@cache
def _load(name: str) -> TrialSpec:
    module = importlib.import_module(f"{_PACKAGE}.{name}")
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, TrialSpec):
        raise TciaTrialsError(
            f"builder module {module.__name__} must define SPEC = TrialSpec(...), "
            f"found {type(spec).__name__}"
        )
    if spec.name != name:
        raise TciaTrialsError(
            f"builder module {module.__name__} defines SPEC.name = {spec.name!r}; "
            f"a builder's name must equal its module name {name!r}"
        )
    return spec


def builder(name: str) -> TrialSpec:
    """The :class:`~tcia_trials.spec.TrialSpec` of a builder.

    Parameters
    ----------
    name
        Builder name; case-insensitive, ``-`` and ``_`` interchangeable (``"ACRIN-6698"``).

    Raises
    ------
    UnknownBuilderError
        (a KeyError) when no builder has that name; the message lists close matches and says how
        to list all builders.
    """
    if not isinstance(name, str):
        raise TypeError(f"builder name must be a str, got {type(name).__name__}")
    key = normalize_name(name)
    names = _module_names()
    if key not in names:
        matches = difflib.get_close_matches(
            key, names, n=_MAX_SUGGESTIONS, cutoff=_SUGGESTION_CUTOFF
        )
        hint = (
            f"did you mean {', '.join(repr(m) for m in matches)}?"
            if matches
            else "no builder has a similar name."
        )
        raise UnknownBuilderError(
            f"unknown builder {name!r}: {hint} "
            "List all builders with `tcia-trials catalog` or `tcia_trials.list_builders()`."
        )
    return _load(key)
