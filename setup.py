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

setup(
    ext_modules=[
        Extension(
            "envs._native",
            sources=["envs/_native.c"],
            depends=[os.path.join("envs", "c", f) for f in sorted(os.listdir(os.path.join("envs", "c")))],
            extra_compile_args=flags,
            extra_link_args=link,
        )
    ]
)
