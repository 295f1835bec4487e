"""Typed configs from plain data: a dataclass rebuilt from a dict (a JSON file, a checkpoint).

Unknown names are an error, so a typo never silently builds the wrong model. Nested dataclass
fields take a nested dict; lists become tuples where the field is a tuple.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from deepfake_studio.errors import StudioError

T = TypeVar("T")


class ConfigError(StudioError):
    """A config file or a saved config names a field the dataclass does not have."""


def config_dict(config: object) -> dict[str, Any]:
    """A config dataclass as plain data (what checkpoints store)."""
    return dataclasses.asdict(config)  # type: ignore[call-overload]


def config_from_dict(cls: type[T], values: Mapping[str, object], source: str = "") -> T:
    """`cls()` with the fields in `values` replaced (recursively for nested configs)."""
    return apply_overrides(cls(), values, source or cls.__name__)  # type: ignore[call-arg]


def apply_overrides(config: T, overrides: Mapping[str, object], source: str) -> T:
    fields = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    changes: dict[str, object] = {}
    for name, value in overrides.items():
        if name not in fields:
            raise ConfigError(
                f"config {source}: unknown field {name!r} (known: {', '.join(fields)})"
            )
        current = getattr(config, name)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            value = apply_overrides(current, value, source)
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        changes[name] = value
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]
