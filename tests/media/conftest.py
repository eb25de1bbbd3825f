"""Build the media Cython extensions in place when a checkout has not built them yet."""

import importlib


def _ensure_built():
    try:
        for name in ("_g711", "_dsp"):
            importlib.import_module("goip_tw.media." + name)
    except ImportError:
        from goip_tw.media.build_ext import build_in_place
        build_in_place()


_ensure_built()
