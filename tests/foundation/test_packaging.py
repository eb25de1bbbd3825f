"""What `pip install .` ships: every package, the plugin, the web files."""

import os

import goip_tw

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_package_directory_has_an_init():
    """find_packages() skips a directory without __init__.py; an editable install
    hides that (namespace packages), a real install then lacks the subsystem."""
    base = os.path.dirname(goip_tw.__file__)
    missing = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        if any(f.endswith((".py", ".pyx")) for f in filenames) and "__init__.py" not in filenames:
            missing.append(os.path.relpath(dirpath, ROOT))
    assert missing == []


def test_plugin_is_one_service_maker_and_no_twisted_init():
    plugins = os.path.join(ROOT, "twisted", "plugins")
    assert not os.path.exists(os.path.join(ROOT, "twisted", "__init__.py"))
    assert not os.path.exists(os.path.join(plugins, "__init__.py"))
    text = open(os.path.join(plugins, "goip_plugin.py")).read()
    assert 'ServiceMaker(' in text and '"goip_tw.tap"' in text
