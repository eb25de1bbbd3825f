"""Config schema migrations: one function per version step, applied in order.

A file without ``schema_version`` is treated as version 0 (the pre-release layout,
where the web port lived at top level as ``http_port``).
"""

from __future__ import annotations

from goip_tw.config import schema


def _v0_to_v1(data: dict) -> dict:
    data = dict(data)
    if "http_port" in data:
        web = dict(data.get("web", {}))
        web.setdefault("port", data.pop("http_port"))
        data["web"] = web
    return data


#: from-version -> function returning the data at from-version + 1
STEPS = {0: _v0_to_v1}


def migrate(data: dict, file: str, errors: list) -> dict:
    from goip_tw.config.model import SCHEMA_VERSION

    version = data.get("schema_version", 0)
    if not isinstance(version, int) or version < 0:
        errors.append(schema.ConfigError(file, "schema_version", f"not a version number: {version!r}"))
        return data
    if version > SCHEMA_VERSION:
        errors.append(schema.ConfigError(
            file, "schema_version",
            f"written by a newer goip-tw (version {version}; this one knows {SCHEMA_VERSION})"))
        return data
    while version < SCHEMA_VERSION:
        data = STEPS[version](data)
        version += 1
    data = dict(data)
    data["schema_version"] = version
    return data
