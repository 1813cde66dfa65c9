"""The compiled parts: the relay of steady calls between a browser and a G.711 phone
(gateway/media/_g711relay.c), the G.711 <-> Opus frame step of the transcoder
(gateway/media/_opusframes.c; the step itself, which the relay shares, in _opusstep.h)
and the ICE socket's dispatch of media datagrams (gateway/media/_icedemux.c).

Everything else is in pyproject.toml. The extensions are optional: without a C compiler or
Python's headers the install goes on and calls use the pure-Python path
(gateway/media/native_relay.py and gateway/media/transcoder.py say when the C one runs).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gateway.media._g711relay",
            ["gateway/media/_g711relay.c"],
            depends=["gateway/media/_opusstep.h"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        ),
        Extension(
            "gateway.media._icedemux",
            ["gateway/media/_icedemux.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        ),
        Extension(
            "gateway.media._opusframes",
            ["gateway/media/_opusframes.c"],
            depends=["gateway/media/_opusstep.h"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        ),
    ]
)
