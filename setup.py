"""Build cfq: the C core (one file per ISA, ISA flags on that file only) and
the Cython extension cfq._core that wraps it."""
import os
import re
import sys
import sysconfig

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
import shutil

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools"))
import core_build  # noqa: E402  (the core's sources and flags, shared with the Makefile)

CORE_SOURCES = core_build.sources()


def _target_is_x86():
    plat = sysconfig.get_platform().lower()  # honours _PYTHON_HOST_PLATFORM
    archflags = os.environ.get("ARCHFLAGS", "")
    if "arm64" in archflags or "aarch64" in plat or plat.endswith("arm64"):
        return False
    return any(tag in plat for tag in ("x86_64", "amd64", "win32", "i686", "universal"))


def _version():
    """CFQ_VERSION_MAJOR.MINOR.PATCH from src/cfq.h, the one place it is written."""
    with open("src/cfq.h") as f:
        parts = dict(re.findall(r"#define CFQ_VERSION_(MAJOR|MINOR|PATCH) (\d+)", f.read()))
    return f"{parts['MAJOR']}.{parts['MINOR']}.{parts['PATCH']}"


# Headers shipped in the package, where cfq.get_include() points.
PUBLIC_HEADERS = ["src/cfq.h", "src/cfq_import.h"]


def copy_headers(package_dir):
    dest = os.path.join(package_dir, "include")
    os.makedirs(dest, exist_ok=True)
    for header in PUBLIC_HEADERS:
        shutil.copy2(header, dest)


class BuildPyWithHeaders(build_py):
    def run(self):
        super().run()
        copy_headers(os.path.join(self.build_lib, "cfq"))


class BuildExtWithCore(build_ext):
    """Compiles the C core file by file with its own flags and links the
    objects into each extension."""

    def build_extension(self, ext):
        objects = []
        for source in CORE_SOURCES:
            objects += self.compiler.compile(
                [source],
                output_dir=self.build_temp,
                include_dirs=["src"],
                extra_postargs=core_build.flags(self.compiler.compiler_type, source, _target_is_x86()),
                depends=core_build.HEADERS,
            )
        ext.extra_objects = objects + list(ext.extra_objects or [])
        super().build_extension(ext)

    def run(self):
        super().run()
        if self.inplace:  # make build: cfq.get_include() works in the checkout too
            copy_headers("cfq")


extensions = [
    Extension(
        "cfq._core",
        ["cfq/_core.pyx"],
        include_dirs=["src", numpy.get_include()],
        # The core's files too, so editing them relinks the extension.
        depends=CORE_SOURCES + core_build.HEADERS,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        libraries=[] if os.name == "nt" else ["m"],
    )
]

setup(
    version=_version(),
    ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}),
    cmdclass={"build_ext": BuildExtWithCore, "build_py": BuildPyWithHeaders},
)
