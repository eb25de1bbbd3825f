"""Media engine: RTP/RTCP, jitter buffer, codecs, DTMF, tones, VAD, SRTP, bridge."""
