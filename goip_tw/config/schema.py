"""The configuration schema machinery.

Every setting is an attrs field declared with :func:`setting`, which records the
metadata the web UI and the JSON API render and validate from (label, help, unit,
range or choices, default, user level).  Sections are frozen attrs classes
registered with :func:`section`.  Loading collects *all* errors, each naming the
file, the dotted key and the reason, instead of stopping at the first one.
"""

from __future__ import annotations

import typing
from typing import Any, Callable

import attrs

LEVELS = ("admin", "user", "sms")
_META = "goip"

#: name -> section class, in registration order
SECTIONS: dict[str, type] = {}


@attrs.frozen
class SettingInfo:
    """Metadata of one setting, as the UI and API see it."""

    label: str
    help: str = ""
    unit: str | None = None
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    level: str = "admin"
    secret: bool = False
    check: Callable[[Any], None] | None = None
    feature: str | None = None


@attrs.frozen
class ConfigError:
    """One problem in a config file: where and why."""

    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.reason}"


class ConfigErrors(Exception):
    """All problems found in one load, reported together."""

    def __init__(self, errors: list[ConfigError]):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def setting(default: Any = attrs.NOTHING, *, label: str, help: str = "",
            unit: str | None = None, choices=None, min=None, max=None,
            level: str = "admin", secret: bool = False, check=None,
            feature: str | None = None, factory=None):
    """Declare one setting of a section.

    ``check(value)`` raises ``ValueError(reason)`` for values the type, range
    and choices cannot express (syntax of a prefix list, a host:port, ...).
    ``level`` is the lowest user level (F-301) that may see and change it.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}")
    info = SettingInfo(label=label, help=help, unit=unit,
                       choices=tuple(choices) if choices is not None else None,
                       min=min, max=max, level=level, secret=secret, check=check,
                       feature=feature)
    kw: dict[str, Any] = {"metadata": {_META: info}}
    if factory is not None:
        kw["factory"] = factory
    else:
        kw["default"] = default
    return attrs.field(**kw)


def section(name: str):
    """Class decorator: make a frozen attrs section and register it under ``name``."""

    def wrap(cls):
        cls = attrs.frozen(cls) if not attrs.has(cls) else cls
        cls.__section_name__ = name
        if name in SECTIONS and SECTIONS[name] is not cls:
            raise ValueError(f"config section {name!r} registered twice")
        SECTIONS[name] = cls
        return cls

    return wrap


def info(field: attrs.Attribute) -> SettingInfo | None:
    return field.metadata.get(_META)


# --- value checking --------------------------------------------------------------

def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _check_value(tp, value, key: str, file: str, errors: list[ConfigError]):
    """Coerce ``value`` to ``tp``; append errors; return the value or NOTHING."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        non_none = [a for a in args if a is not type(None)]
        if value is None or (value == "" and str not in non_none):
            return None
        return _check_value(non_none[0], value, key, file, errors)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            errors.append(ConfigError(file, key, f"expected a list, got {type(value).__name__}"))
            return attrs.NOTHING
        inner = args[0] if args else Any
        out = []
        for i, item in enumerate(value):
            v = _check_value(inner, item, f"{key}[{i}]", file, errors)
            if v is not attrs.NOTHING:
                out.append(v)
        return tuple(out)
    if attrs.has(tp):
        if not isinstance(value, dict):
            errors.append(ConfigError(file, key, "expected a table"))
            return attrs.NOTHING
        return build_section(tp, value, key, file, errors)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        errors.append(ConfigError(file, key, f"expected true or false, got {value!r}"))
        return attrs.NOTHING
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        errors.append(ConfigError(file, key, f"expected an integer, got {value!r}"))
        return attrs.NOTHING
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        errors.append(ConfigError(file, key, f"expected a number, got {value!r}"))
        return attrs.NOTHING
    if tp is str:
        if isinstance(value, str):
            return value
        errors.append(ConfigError(file, key, f"expected a string, got {value!r}"))
        return attrs.NOTHING
    errors.append(ConfigError(file, key, f"unsupported type {_type_name(tp)}"))
    return attrs.NOTHING


def _check_meta(meta: SettingInfo | None, value, key, file, errors) -> bool:
    if meta is None or value is None:
        return True
    ok = True
    if meta.choices is not None and value not in meta.choices:
        errors.append(ConfigError(file, key, f"must be one of {', '.join(map(str, meta.choices))}; got {value!r}"))
        ok = False
    if meta.min is not None and isinstance(value, (int, float)) and value < meta.min:
        errors.append(ConfigError(file, key, f"must be at least {meta.min}; got {value}"))
        ok = False
    if meta.max is not None and isinstance(value, (int, float)) and value > meta.max:
        errors.append(ConfigError(file, key, f"must be at most {meta.max}; got {value}"))
        ok = False
    if ok and meta.check is not None:
        try:
            meta.check(value)
        except (ValueError, TypeError) as e:
            errors.append(ConfigError(file, key, str(e)))
            ok = False
    return ok


def build_section(cls, data: dict, prefix: str, file: str, errors: list[ConfigError]):
    """Build ``cls`` from a TOML table, appending every problem to ``errors``."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in attrs.fields(cls)}
    kwargs = {}
    for k in data:
        if k not in fields:
            errors.append(ConfigError(file, _join(prefix, k), "unknown setting"))
    for name, f in fields.items():
        if name not in data:
            continue
        key = _join(prefix, name)
        v = _check_value(hints.get(name, Any), data[name], key, file, errors)
        if v is attrs.NOTHING:
            continue
        if _check_meta(info(f), v, key, file, errors):
            kwargs[name] = v
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # cross-field validators
        errors.append(ConfigError(file, prefix or "(root)", str(e)))
        return attrs.NOTHING


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def validate(obj, file: str = "<config>") -> list[ConfigError]:
    """Re-check an already built config object (e.g. after an API change)."""
    errors: list[ConfigError] = []
    build_section(type(obj), to_dict(obj), "", file, errors)
    return errors


def to_dict(obj) -> dict:
    """Plain TOML-ready dict (None values left out: TOML has no null)."""
    out = {}
    for f in attrs.fields(type(obj)):
        v = getattr(obj, f.name)
        if v is None:
            continue
        out[f.name] = _plain(v)
    return out


def _plain(v):
    if attrs.has(type(v)):
        return to_dict(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def describe(cls, prefix: str = "") -> list[dict]:
    """Flat list of setting descriptions for UI/API rendering (``GET /api/schema``)."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in attrs.fields(cls):
        key = _join(prefix, f.name)
        tp = hints.get(f.name, Any)
        if attrs.has(tp):
            out.extend(describe(tp, key))
            continue
        meta = info(f)
        if meta is None:
            continue
        default = f.default.factory() if isinstance(f.default, attrs.Factory) else f.default
        if attrs.has(type(default)):
            default = to_dict(default)
        elif isinstance(default, tuple):
            default = [to_dict(x) if attrs.has(type(x)) else x for x in default]
        out.append({
            "key": key, "type": _type_name(typing.get_origin(tp) or tp),
            "label": meta.label, "help": meta.help, "unit": meta.unit,
            "choices": list(meta.choices) if meta.choices else None,
            "min": meta.min, "max": meta.max, "level": meta.level,
            "secret": meta.secret, "feature": meta.feature,
            "default": None if meta.secret else default,
        })
    return out


def visible_to(level: str, setting_level: str) -> bool:
    """admin sees everything, user sees user+sms settings, sms sees sms settings."""
    return LEVELS.index(level) <= LEVELS.index(setting_level)


def diff(old, new, prefix: str = "") -> set[str]:
    """Dotted keys whose value differs between two config objects."""
    changed: set[str] = set()
    for f in attrs.fields(type(new)):
        a, b = getattr(old, f.name, None), getattr(new, f.name)
        key = _join(prefix, f.name)
        if a == b:
            continue
        if attrs.has(type(b)) and type(a) is type(b):
            changed |= diff(a, b, key)
        else:
            changed.add(key)
    return changed
