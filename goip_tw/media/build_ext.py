"""Build the media Cython extensions in place (development helper).

The lead's setup.py builds the same extensions for installs; this keeps tests
and benchmarks runnable from a checkout: ``python -m goip_tw.media.build_ext``.
G.729 is only built when bcg729's headers are present.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BCG729_INCLUDE = "/usr/include/bcg729"


def extensions():
    """Every ``goip_tw/media/*.pyx`` (as setup.py builds them); G.729 only with bcg729."""
    import glob

    from setuptools import Extension

    exts = []
    for pyx in sorted(glob.glob(os.path.join(ROOT, "goip_tw", "media", "*.pyx"))):
        rel = os.path.relpath(pyx, ROOT)
        name = rel[:-4].replace(os.sep, ".")
        kw = {"extra_compile_args": ["-O3"], "libraries": ["m"]}
        if name.endswith("_g729"):
            if not os.path.isdir(BCG729_INCLUDE):
                continue
            kw["libraries"] = ["bcg729"]
        exts.append(Extension(name, [rel], **kw))
    return exts


def build_in_place() -> None:
    from Cython.Build import cythonize
    from setuptools import setup

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        setup(name="goip_tw_media_ext", script_args=["build_ext", "--inplace", "-q"],
              ext_modules=cythonize(extensions(), quiet=True,
                                    compiler_directives={"language_level": 3}))
    finally:
        os.chdir(cwd)


if __name__ == "__main__":
    build_in_place()
    sys.exit(0)
