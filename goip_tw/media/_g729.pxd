# Declarations of bcg729's public C API (/usr/include/bcg729/{encoder,decoder}.h).
from libc.stdint cimport int16_t, uint8_t

cdef extern from "bcg729/encoder.h" nogil:
    ctypedef struct bcg729EncoderChannelContextStruct:
        pass
    bcg729EncoderChannelContextStruct *initBcg729EncoderChannel(uint8_t enableVAD)
    void closeBcg729EncoderChannel(bcg729EncoderChannelContextStruct *ctx)
    void bcg729Encoder(bcg729EncoderChannelContextStruct *ctx, const int16_t *inputFrame,
                       uint8_t *bitStream, uint8_t *bitStreamLength)
    void bcg729GetRFC3389Payload(bcg729EncoderChannelContextStruct *ctx, uint8_t *payload)

cdef extern from "bcg729/decoder.h" nogil:
    ctypedef struct bcg729DecoderChannelContextStruct:
        pass
    bcg729DecoderChannelContextStruct *initBcg729DecoderChannel()
    void closeBcg729DecoderChannel(bcg729DecoderChannelContextStruct *ctx)
    void bcg729Decoder(bcg729DecoderChannelContextStruct *ctx, const uint8_t *bitStream,
                       uint8_t bitStreamLength, uint8_t frameErasureFlag,
                       uint8_t SIDFrameFlag, uint8_t rfc3389PayloadFlag, int16_t *signal)
