"""The one compiled part: the G.711 relay (gateway/media/_g711relay.c).

Everything else is in pyproject.toml. The extension is optional: without a C compiler or
Python's headers the install goes on and calls use the pure-Python path
(gateway/media/native_relay.py says when the C one runs).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gateway.media._g711relay",
            ["gateway/media/_g711relay.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
