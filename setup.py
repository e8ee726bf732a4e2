"""Builds the native env engine; everything else is declared in pyproject.toml."""

import os

from setuptools import Extension, setup

# APPLIANCE_SANITIZE=1 builds the envs with AddressSanitizer and UBSan (CI uses it).
sanitize = os.environ.get("APPLIANCE_SANITIZE") == "1"
# Every warning is an error, in the sanitized build too: a new env header must build clean.
warnings = ["-Wall", "-Wextra", "-Werror"]
flags = ["-O3", "-std=c99", *warnings]
link = []
if sanitize:
    # -fno-wrapv undoes Python's -fwrapv so UBSan can see signed overflow.
    flags = ["-O1", "-g", "-std=c99", "-fno-omit-frame-pointer", "-fno-wrapv", "-fsanitize=address,undefined",
             "-fno-sanitize-recover=undefined", *warnings]
    link = ["-fsanitize=address,undefined"]


def compiled_step_loop() -> list[Extension]:
    """The emulated envs' compiled step loop (envs/emulation/steploop.py falls back to Python without it)."""
    # APPLIANCE_NO_CYTHON=1 leaves it out; so does a sanitizer build, which instruments the C envs only.
    if os.environ.get("APPLIANCE_NO_CYTHON") == "1" or sanitize:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:  # a build without Cython (it is in pyproject's build requirements): Python fallback
        return []
    ext = Extension("envs.emulation._steploop", sources=["envs/emulation/_steploop.pyx"],
                    extra_compile_args=["-O2"], optional=True)
    return cythonize([ext], compiler_directives={"language_level": "3"}, quiet=True)


setup(
    ext_modules=[
        Extension(
            "envs._native",
            sources=["envs/_native.c"],
            depends=[os.path.join("envs", "c", f) for f in sorted(os.listdir(os.path.join("envs", "c")))],
            extra_compile_args=flags,
            extra_link_args=link,
        ),
        *compiled_step_loop(),
    ]
)
