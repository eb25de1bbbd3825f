"""Build the media Cython extensions in place when a checkout has not built them yet."""

import glob
import importlib
import os

import goip_tw.media


def _ensure_built():
    here = os.path.dirname(goip_tw.media.__file__)
    names = [os.path.basename(p)[:-4] for p in glob.glob(os.path.join(here, "*.pyx"))]
    try:
        for name in names:
            if name != "_g729":  # optional: needs libbcg729-dev
                importlib.import_module("goip_tw.media." + name)
    except ImportError:
        from goip_tw.media.build_ext import build_in_place
        build_in_place()


_ensure_built()
