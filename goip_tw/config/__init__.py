"""Typed configuration: schema with metadata, TOML load/save, reconfiguration."""

from goip_tw.config.schema import ConfigError, ConfigErrors, setting, section  # noqa: F401
