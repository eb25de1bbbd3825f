"""The root configuration object, assembled from every registered section.

Area modules register their sections with ``@section(name)``; the root class has one
field per section, each defaulting to that section's defaults, plus the schema
version used for migrations.
"""

from __future__ import annotations

import importlib

import attrs

from goip_tw.config import schema

#: Area section modules.  A module that does not exist yet is skipped.
SECTION_MODULES = (
    "goip_tw.config.sections.core",
    "goip_tw.config.sections.simulator",
    "goip_tw.config.sections.modems",
    "goip_tw.config.sections.sip",
    "goip_tw.config.sections.voip",
    "goip_tw.config.sections.media",
    "goip_tw.config.sections.calls",
    "goip_tw.config.sections.sms",
    "goip_tw.config.sections.smpp",
    "goip_tw.config.sections.sms_inbound",
)

SCHEMA_VERSION = 1

for _mod in SECTION_MODULES:
    try:
        importlib.import_module(_mod)
    except ModuleNotFoundError as e:
        if not (e.name and _mod.startswith(e.name)):
            raise


def _build_root():
    fields = {
        "schema_version": attrs.field(default=SCHEMA_VERSION),
    }
    for name, cls in schema.SECTIONS.items():
        fields[name] = attrs.field(factory=cls)
    return attrs.make_class("GatewayConfig", fields, frozen=True)


GatewayConfig = _build_root()
GatewayConfig.__annotations__ = {"schema_version": int,
                                 **{n: c for n, c in schema.SECTIONS.items()}}


def default_config() -> "GatewayConfig":
    return GatewayConfig()
