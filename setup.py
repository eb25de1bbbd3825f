"""goip-tw packaging.  Cython extensions are built when Cython is present; G.729 is
linked against Debian's bcg729 only when its headers are installed, so the gateway
still builds and runs (reporting G.729 unavailable) without it."""

import glob
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def extensions():
    try:
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError:
        return []
    exts = []
    for pyx in sorted(glob.glob("goip_tw/**/*.pyx", recursive=True)):
        name = pyx[:-4].replace(os.sep, ".")
        kw = {"extra_compile_args": ["-O3"]}
        if name.endswith("_g729"):
            if not os.path.exists("/usr/include/bcg729/encoder.h"):
                print("goip-tw: bcg729 headers not found; G.729 will be unavailable")
                continue
            kw["libraries"] = ["bcg729"]
        exts.append(Extension(name, [pyx], **kw))
    if not exts:
        return []
    return cythonize(exts, language_level=3, quiet=True)


setup(
    name="goip-tw",
    version="0.1.0",
    description="A Twisted-based GSM/LTE-to-VoIP gateway (software GoIP LTE-X4)",
    long_description=open(os.path.join(HERE, "README.rst"), encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["goip_tw", "goip_tw.*"]) + ["twisted.plugins"],
    package_data={"twisted": ["plugins/goip_plugin.py"]},
    data_files=[(os.path.join("share", "goip-tw", root), [os.path.join(root, f) for f in files])
                for root, _, files in os.walk("web")],
    ext_modules=extensions(),
    install_requires=[
        "twisted[tls]>=23.10",
        "klein>=23.5",
        "attrs>=23.1",
        "automat",
        "pyserial>=3.5",
        "pyopenssl>=23.0",
        "smpplib>=2.2",
        "tomli-w>=1.0",
        "pylibsrtp>=0.10",
        "cryptography>=41",
    ],
    extras_require={
        "test": ["pytest", "pytest-twisted", "pytest-timeout", "hypothesis", "treq", "aiosmtpd"],
    },
    entry_points={
        "console_scripts": [
            "goip-simulator = goip_tw.simulator.__main__:main",
        ],
    },
)
