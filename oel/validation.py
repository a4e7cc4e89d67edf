"""Checking untrusted data against a dataclass's own declaration (settings from a TOML file, items from an
import), so each field's type is written once: on the dataclass.

Strict: no "1" for 1, no "no" for False, no NaN or infinity for a number. The first problem is a one-line
error naming the field.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, fields
from functools import lru_cache

from oel.errors import OELError


@lru_cache(maxsize=None)
def _model(cls: type):
    from pydantic import ConfigDict, create_model

    hints = typing.get_type_hints(cls)
    return create_model(f"{cls.__name__}Fields", __config__=ConfigDict(strict=True, allow_inf_nan=False, extra="ignore"),
                        **{f.name: (hints[f.name], ... if f.default is MISSING and f.default_factory is MISSING else None)
                           for f in fields(cls)})


def checked_fields(cls: type, data: dict, where: str) -> dict:
    """`data`'s values for `cls`'s fields, checked against their declared types (defaults are not filled in:
    the dataclass does that)."""
    from pydantic import ValidationError

    try:
        _model(cls).model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "value"
        got = data.get(first["loc"][0]) if first["loc"] and isinstance(data, dict) else data
        raise OELError(f"{where}: {field}: {first['msg']}, got {got!r}") from None
    return data
