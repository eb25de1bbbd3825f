"""Config machinery: errors name file+key+reason, atomic writes, migration, reload."""

import os
import subprocess
import sys
import textwrap

import attrs
import pytest

from goip_tw.config import files, schema
from goip_tw.config.manager import ConfigManager
from goip_tw.config.model import SCHEMA_VERSION, GatewayConfig


def write(tmp_path, text):
    p = tmp_path / "goip.toml"
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(p)


def errors_of(path):
    with pytest.raises(schema.ConfigErrors) as e:
        files.load(path)
    return {(err.key, err.reason) for err in e.value.errors}, e.value


@pytest.mark.parametrize("snippet,key,reason_part", [
    ("[web]\nport = 'eighty'", "web.port", "expected an integer"),
    ("[web]\nport = 70000", "web.port", "at most 65535"),
    ("[web]\nport = -1", "web.port", "at least 0"),
    ("[web]\nlan_access = 'yes'", "web.lan_access", "true or false"),
    ("[web]\nbind = 'not-an-ip'", "web.bind", "not an IP address"),
    ("[web]\nwhitelist = '1.2.3.4'", "web.whitelist", "expected a list"),
    ("[web]\nwhitelist = ['1.1.1.1', '2.2.2.2', '3.3.3.3']", "web.whitelist", "at most two"),
    ("[general]\nlanguage = 'fr'", "general.language", "must be one of"),
    ("[general]\ntimezone = 'GMT+13'", "general.timezone", "within -11..12"),
    ("[general]\nbogus = 1", "general.bogus", "unknown setting"),
    ("[nosuchsection]\nx = 1", "nosuchsection", "unknown setting"),
    ("web = 3", "web", "expected a table"),
])
def test_each_kind_of_bad_value_names_the_key(tmp_path, snippet, key, reason_part):
    path = write(tmp_path, f"schema_version = {SCHEMA_VERSION}\n{snippet}\n")
    errs, exc = errors_of(path)
    assert any(k == key and reason_part in r for k, r in errs), errs
    assert path in str(exc)


def test_all_errors_reported_at_once(tmp_path):
    path = write(tmp_path, """
        [web]
        port = "x"
        lan_access = 3
        [general]
        timezone = "UTC"
    """)
    errs, _ = errors_of(path)
    assert {k for k, _ in errs} == {"web.port", "web.lan_access", "general.timezone"}


def test_not_toml_names_the_file(tmp_path):
    path = write(tmp_path, "[web\nport=")
    errs, exc = errors_of(path)
    assert ("(file)" in {k for k, _ in errs}) and "not valid TOML" in str(exc)


def test_newer_schema_version_refused(tmp_path):
    path = write(tmp_path, f"schema_version = {SCHEMA_VERSION + 1}\n")
    errs, _ = errors_of(path)
    assert any(k == "schema_version" and "newer" in r for k, r in errs)


def test_migration_from_version_0(tmp_path):
    path = write(tmp_path, "http_port = 8181\n[general]\nname = 'old box'\n")
    cfg = files.load(path)
    assert cfg.web.port == 8181
    assert cfg.general.name == "old box"
    assert cfg.schema_version == SCHEMA_VERSION


def test_round_trip_defaults(tmp_path):
    path = str(tmp_path / "goip.toml")
    files.save(path, GatewayConfig())
    assert files.load(path) == GatewayConfig()


def test_bad_file_fails_startup_with_message_not_traceback(tmp_path):
    path = write(tmp_path, "[web]\nport = 'x'\n[general]\ntimezone = 'UTC'\n")
    proc = subprocess.run(
        [sys.executable, "-m", "twisted", "goip", "--config", path, "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "web.port" in out and "general.timezone" in out and path in out
    assert "Traceback" not in out


@pytest.mark.parametrize("stop_at", ["open", "half", "synced", "backup", "renamed"])
def test_crash_during_write_leaves_old_or_new_file(tmp_path, stop_at):
    """Kill a writer process between steps; the file is then whole (old or new)."""
    path = str(tmp_path / "goip.toml")
    old = GatewayConfig()
    files.save(path, old)
    new = attrs.evolve(old, general=attrs.evolve(old.general, name="x" * 5000))
    script = textwrap.dedent(f"""
        import os, signal, attrs
        from goip_tw.config import files
        from goip_tw.config.model import GatewayConfig
        c = GatewayConfig()
        new = attrs.evolve(c, general=attrs.evolve(c.general, name="x" * 5000))
        def step(name):
            if name == {stop_at!r}:
                os.kill(os.getpid(), signal.SIGKILL)
        files.atomic_write({path!r}, files.dumps(new), _step=step)
    """)
    proc = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert proc.returncode == -9
    loaded = files.load(path)
    assert loaded in (old, new)
    if stop_at == "renamed":
        assert loaded == new
        assert files.load(path + ".bak") == old


def test_manager_reload_notifies_changes_and_keeps_overrides(tmp_path):
    path = str(tmp_path / "goip.toml")
    files.save(path, GatewayConfig())
    mgr = ConfigManager(path, {"web": {"port": 0}})
    seen = []
    mgr.listen(lambda old, new, changed: seen.append(changed))
    text = open(path).read().replace('name = "goip-tw"', 'name = "box 7"')
    open(path, "w").write(text)
    assert mgr.reload() == {"general.name"}
    assert seen == [{"general.name"}]
    assert mgr.config.web.port == 0
    # a bad edit is rejected and the running config stays
    open(path, "w").write(text.replace('name = "box 7"', "name = 7"))
    assert mgr.reload() == set()
    assert mgr.config.general.name == "box 7"


def test_update_validates_and_writes_backup(tmp_path):
    path = str(tmp_path / "goip.toml")
    mgr = ConfigManager(path)
    mgr.save_if_missing()
    good = attrs.evolve(mgr.config, general=attrs.evolve(mgr.config.general, name="edge"))
    assert mgr.update(good) == {"general.name"}
    assert os.path.exists(path + ".bak")
    bad = attrs.evolve(mgr.config, web=attrs.evolve(mgr.config.web, port=99999))
    with pytest.raises(schema.ConfigErrors):
        mgr.update(bad)
    assert files.load(path).general.name == "edge"


def test_schema_describes_every_setting_with_metadata():
    items = schema.describe(GatewayConfig)
    keys = {i["key"] for i in items}
    assert {"web.port", "users.admin_password", "general.timezone"} <= keys
    for i in items:
        assert i["label"] and i["level"] in schema.LEVELS
    pw = next(i for i in items if i["key"] == "users.admin_password")
    assert pw["secret"] and pw["default"] is None
