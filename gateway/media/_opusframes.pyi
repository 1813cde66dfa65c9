# The G.711 <-> Opus frame step in C (gateway/media/_opusframes.c); the transcoder drives it.
from typing_extensions import Buffer

def setup(opus_encode: int, opus_decode: int, /) -> None: ...
def opus_to_g711(
    decoder: int,
    encode_table: int,
    history: int,
    history_length: int,
    pcm: int,
    pcm_capacity: int,
    frame: int,
    payload: Buffer,
    /,
) -> bytes | int: ...
def g711_to_opus(
    encoder: int,
    decode_table: int,
    history: int,
    history_length: int,
    frame: int,
    payload: Buffer,
    /,
) -> bytes | None: ...
