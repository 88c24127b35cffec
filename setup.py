"""Build cfq: the C core (one file per ISA, ISA flags on that file only) and
the Cython extension cfq._core that wraps it."""
import os
import sysconfig

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
import shutil

CORE_SOURCES = [
    "src/cfq_core.c",
    "src/cfq_dispatch.c",
    "src/cfq_scalar.c",
    "src/cfq_avx2.c",
    "src/cfq_avx512.c",
    "src/cfq_neon.c",
    "src/cfq_ops.c",
    "src/cfq_per_channel.c",
    "src/cfq_threads.c",
    "src/cfq_xla_ffi.c",
]


def _target_is_x86():
    plat = sysconfig.get_platform().lower()  # honours _PYTHON_HOST_PLATFORM
    archflags = os.environ.get("ARCHFLAGS", "")
    if "arm64" in archflags or "aarch64" in plat or plat.endswith("arm64"):
        return False
    return any(tag in plat for tag in ("x86_64", "amd64", "win32", "i686", "universal"))


def core_flags(compiler_type, source):
    """Flags for one file of the C core: strict warnings, no FMA contraction,
    never fast-math; an ISA flag on its own file only."""
    name = os.path.basename(source)
    x86 = _target_is_x86()
    if compiler_type == "msvc":
        flags = ["/O2", "/W3", "/WX", "/fp:precise", "/fp:contract-"]
        if x86 and name == "cfq_avx2.c":
            flags.append("/arch:AVX2")
        elif x86 and name == "cfq_avx512.c":
            flags.append("/arch:AVX512")
        return flags
    flags = ["-std=c99", "-O3", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
             "-fno-fast-math", "-fvisibility=hidden"]
    if x86 and name == "cfq_avx2.c":
        flags.append("-mavx2")
    elif x86 and name == "cfq_avx512.c":
        flags.append("-mavx512f")
    return flags


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
                extra_postargs=core_flags(self.compiler.compiler_type, source),
                depends=["src/cfq.h", "src/cfq_internal.h"],
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
        depends=CORE_SOURCES + ["src/cfq.h", "src/cfq_internal.h", "src/cfq_import.h"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        libraries=[] if os.name == "nt" else ["m"],
    )
]

setup(
    ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}),
    cmdclass={"build_ext": BuildExtWithCore, "build_py": BuildPyWithHeaders},
)
