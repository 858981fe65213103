"""`--key=value` overrides of a frozen config, by dotted path (`--generator.render.num_importance=16`)."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_override(arg: str) -> tuple[str, str]:
    """'--a.b=1' or 'a.b=1' -> ('a.b', '1'); anything else raises with the accepted form."""
    text = arg[2:] if arg.startswith("--") else arg
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"override {arg!r} is not of the form --key=value (e.g. --optim.lr_g=0.002)")
    return key, value


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """A copy of `cfg` with each `--dotted.key=value` applied; unknown keys raise naming the close matches."""
    known = flat_keys(cfg)
    for arg in overrides:
        key, value = parse_override(arg)
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {', '.join('--' + c for c in close)}?" if close else ""
            raise ValueError(f"unknown config key {key!r}{hint} (all keys: `et3d-train --list-keys`)")
        cfg = _set(cfg, key.split("."), value, key)
    return cfg


def flat_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every overridable dotted key of a config."""
    keys = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        name = f"{prefix}{f.name}"
        keys.extend(flat_keys(value, name + ".") if dataclasses.is_dataclass(value) else [name])
    return keys


def _set(cfg: Any, path: list[str], text: str, full_key: str) -> Any:
    head = path[0]
    if len(path) > 1:
        return dataclasses.replace(cfg, **{head: _set(getattr(cfg, head), path[1:], text, full_key)})
    tp = typing.get_type_hints(type(cfg))[head]
    return dataclasses.replace(cfg, **{head: _parse(tp, text, full_key)})


def _parse(tp: Any, text: str, key: str) -> Any:
    try:
        if tp is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if tp is str:
            return text
        if typing.get_origin(tp) is tuple:
            args = typing.get_args(tp)
            parts = [p for p in text.split(",") if p.strip()]
            if len(parts) != len(args):
                raise ValueError(f"expected {len(args)} comma-separated values")
            return tuple(_parse(a, p.strip(), key) for a, p in zip(args, parts, strict=True))
    except ValueError as err:
        raise ValueError(f"config key {key!r}: cannot parse {text!r} as {_type_name(tp)}: {err}") from None
    raise TypeError(f"config key {key!r} has unsupported type {tp!r}")


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp)


def format_value(value: Any) -> str:
    """A config value in the syntax `--key=value` parses back: tuples comma-separated, bools lowercase."""
    if isinstance(value, tuple | list):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
