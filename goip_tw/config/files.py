"""Reading and writing the TOML config file.

Writes are atomic: a temporary file in the same directory is written, flushed and
fsynced, the previous file is kept as ``<name>.bak``, and the new one is renamed into
place, so a crash at any step leaves the old or the new file, never a torn one.
"""

from __future__ import annotations

import copy
import os
import tomllib

import tomli_w

from goip_tw.config import schema
from goip_tw.config.migrations import migrate
from goip_tw.config.model import SCHEMA_VERSION, GatewayConfig


def merge(base: dict, overlay: dict) -> dict:
    """Deep-merge ``overlay`` (e.g. command-line overrides) into a copy of ``base``."""
    out = copy.deepcopy(base)
    for k, v in overlay.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def parse(data: dict, file: str = "<config>") -> GatewayConfig:
    """Build the config from a TOML-shaped dict, raising ConfigErrors with every problem."""
    errors: list[schema.ConfigError] = []
    data = migrate(data, file, errors)
    if errors:
        raise schema.ConfigErrors(errors)
    obj = schema.build_section(GatewayConfig, data, "", file, errors)
    if errors:
        raise schema.ConfigErrors(errors)
    return obj


def read_toml(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise schema.ConfigErrors([schema.ConfigError(path, "(file)", f"not valid TOML: {e}")]) from None
    except OSError as e:
        raise schema.ConfigErrors([schema.ConfigError(path, "(file)", e.strerror or str(e))]) from None


def load(path: str, overrides: dict | None = None) -> GatewayConfig:
    """Load ``path`` (a missing file means all defaults) with ``overrides`` applied."""
    data = read_toml(path) if os.path.exists(path) else {"schema_version": SCHEMA_VERSION}
    if overrides:
        data = merge(data, overrides)
    return parse(data, path)


def dumps(config: GatewayConfig) -> str:
    header = ("# goip-tw configuration. Edit and send SIGHUP (or use the web UI) to apply.\n"
              "# Every setting, its meaning and default: GET /api/schema.\n")
    return header + tomli_w.dumps(schema.to_dict(config))


def atomic_write(path: str, text: str, *, _step=None) -> None:
    """Write ``text`` to ``path`` atomically, keeping the previous file as ``.bak``.

    ``_step`` is a test hook called with the name of each step, so tests can stop
    the writer between steps and check that no torn file is ever visible.
    """
    step = _step or (lambda name: None)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = f"{path}.tmp.{os.getpid()}"
    data = text.encode("utf-8")
    with open(tmp, "wb") as f:
        step("open")
        f.write(data[: len(data) // 2])
        step("half")
        f.write(data[len(data) // 2:])
        f.flush()
        os.fsync(f.fileno())
    step("synced")
    if os.path.exists(path):
        bak_tmp = f"{path}.bak.tmp.{os.getpid()}"
        with open(path, "rb") as src, open(bak_tmp, "wb") as dst:
            dst.write(src.read())
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(bak_tmp, f"{path}.bak")
        step("backup")
    os.replace(tmp, path)
    step("renamed")
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(path: str, config: GatewayConfig) -> None:
    atomic_write(path, dumps(config))
