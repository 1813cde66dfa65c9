"""The media of a call: the browser's WebRTC leg and its RTP channel, the SIP leg's RTP, the
transcoder, the bridge between the two legs, and the tones the gateway plays."""
