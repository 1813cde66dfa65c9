"""RTP media of the SIP leg.

Sans-I/O parts (no sockets, no asyncio, time passed in):
    packet       RTP parse/build, RTP/RTCP demux
    g711, g722   codecs; codecs: the codec table and one encoder/decoder shape
    dtmf         RFC 4733 telephone-event sender and receiver
    jitter       adaptive jitter buffer
    concealment  packet loss concealment for decoded audio
    rtcp         RTCP packets and RFC 3550 reception statistics
I/O parts:
    ports        binding the RTP/RTCP port pair
    session      RtpSession, the asyncio endpoint of one call leg
    player, wav  paced playing/recording and WAV files
"""
