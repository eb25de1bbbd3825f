"""SMPP 3.4 PDUs: wire format only (SMPP v3.4 Issue 1.2, §3-§5).

A PDU is a 16-octet header (command_length, command_id, command_status,
sequence_number) and a body of mandatory parameters (C-Octet strings with a
maximum size, 1-octet integers, the length-prefixed short_message) followed by
TLVs (§5.3).  One table per command describes both decoding and encoding.
Decoding is strict: a string without its NUL within its maximum size, a body that
ends inside a field or a TLV whose length runs past the PDU raise ``PduError`` with
the SMPP status the peer should get and the name of the field at fault.
"""

from __future__ import annotations

import struct

import attrs

HEADER = struct.Struct(">IIII")
HEADER_LEN = 16

# command ids (§5.1.2.1)
GENERIC_NACK = 0x80000000
BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
QUERY_SM = 0x00000003
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
REPLACE_SM = 0x00000007
CANCEL_SM = 0x00000008
BIND_TRANSCEIVER = 0x00000009
OUTBIND = 0x0000000B
ENQUIRE_LINK = 0x00000015
SUBMIT_MULTI = 0x00000021
ALERT_NOTIFICATION = 0x00000102
DATA_SM = 0x00000103
RESP = 0x80000000

BINDS = {BIND_RECEIVER: "receiver", BIND_TRANSMITTER: "transmitter",
         BIND_TRANSCEIVER: "transceiver"}

# command_status values (§5.1.3)
ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RINVMSGID = 0x0C
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RCANCELFAIL = 0x11
ESME_RMSGQFUL = 0x14
ESME_RINVESMCLASS = 0x43
ESME_RSUBMITFAIL = 0x45
ESME_RTHROTTLED = 0x58
ESME_RINVSCHED = 0x61
ESME_RINVEXPIRY = 0x62
ESME_RQUERYFAIL = 0x67
ESME_RINVOPTPARSTREAM = 0xC0
ESME_RINVPARLEN = 0xC2
ESME_RINVOPTPARAMVAL = 0xC4
ESME_RUNKNOWNERR = 0xFF

# TLV tags (§5.3.2)
TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_USER_MESSAGE_REFERENCE = 0x0204
TAG_SAR_MSG_REF_NUM = 0x020C
TAG_SAR_TOTAL_SEGMENTS = 0x020E
TAG_SAR_SEGMENT_SEQNUM = 0x020F
TAG_SC_INTERFACE_VERSION = 0x0210
TAG_NETWORK_ERROR_CODE = 0x0423
TAG_MESSAGE_PAYLOAD = 0x0424
TAG_MESSAGE_STATE = 0x0427

# message_state values (§5.2.28)
ENROUTE, DELIVERED, EXPIRED, DELETED, UNDELIVERABLE, ACCEPTED, UNKNOWN, REJECTED = range(1, 9)

ESM_UDHI = 0x40
ESM_DELIVERY_RECEIPT = 0x04

_SM_FIELDS = (
    ("service_type", "c", 6), ("source_addr_ton", "b", 0), ("source_addr_npi", "b", 0),
    ("source_addr", "c", 21), ("dest_addr_ton", "b", 0), ("dest_addr_npi", "b", 0),
    ("destination_addr", "c", 21), ("esm_class", "b", 0), ("protocol_id", "b", 0),
    ("priority_flag", "b", 0), ("schedule_delivery_time", "c", 17),
    ("validity_period", "c", 17), ("registered_delivery", "b", 0),
    ("replace_if_present_flag", "b", 0), ("data_coding", "b", 0),
    ("sm_default_msg_id", "b", 0), ("short_message", "sm", 254),
)
_BIND_FIELDS = (
    ("system_id", "c", 16), ("password", "c", 9), ("system_type", "c", 13),
    ("interface_version", "b", 0), ("addr_ton", "b", 0), ("addr_npi", "b", 0),
    ("address_range", "c", 41),
)

#: command id -> mandatory body fields (name, kind, max size incl. NUL)
BODIES: dict[int, tuple] = {
    BIND_RECEIVER: _BIND_FIELDS, BIND_TRANSMITTER: _BIND_FIELDS, BIND_TRANSCEIVER: _BIND_FIELDS,
    BIND_RECEIVER | RESP: (("system_id", "c", 16),),
    BIND_TRANSMITTER | RESP: (("system_id", "c", 16),),
    BIND_TRANSCEIVER | RESP: (("system_id", "c", 16),),
    SUBMIT_SM: _SM_FIELDS, DELIVER_SM: _SM_FIELDS,
    SUBMIT_SM | RESP: (("message_id", "c", 65),),
    DELIVER_SM | RESP: (("message_id", "c", 65),),
    QUERY_SM: (("message_id", "c", 65), ("source_addr_ton", "b", 0),
               ("source_addr_npi", "b", 0), ("source_addr", "c", 21)),
    QUERY_SM | RESP: (("message_id", "c", 65), ("final_date", "c", 17),
                      ("message_state", "b", 0), ("error_code", "b", 0)),
    CANCEL_SM: (("service_type", "c", 6), ("message_id", "c", 65),
                ("source_addr_ton", "b", 0), ("source_addr_npi", "b", 0),
                ("source_addr", "c", 21), ("dest_addr_ton", "b", 0),
                ("dest_addr_npi", "b", 0), ("destination_addr", "c", 21)),
    CANCEL_SM | RESP: (), UNBIND: (), UNBIND | RESP: (), ENQUIRE_LINK: (),
    ENQUIRE_LINK | RESP: (), GENERIC_NACK: (),
}

#: responses whose body is omitted when the status is an error (§3.3 / §4.x notes)
_EMPTY_ON_ERROR = {SUBMIT_SM | RESP, DELIVER_SM | RESP, BIND_RECEIVER | RESP,
                   BIND_TRANSMITTER | RESP, BIND_TRANSCEIVER | RESP, QUERY_SM | RESP}


class PduError(Exception):
    """A PDU that cannot be accepted; ``status`` goes back to the peer."""

    def __init__(self, status: int, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.status = status
        self.field = field
        self.reason = reason


@attrs.frozen
class Pdu:
    command_id: int
    sequence: int
    status: int = ESME_ROK
    params: dict = attrs.field(factory=dict)
    tlvs: dict = attrs.field(factory=dict)

    def __getitem__(self, name):
        return self.params[name]

    def get(self, name, default=None):
        return self.params.get(name, default)

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESP)


def _read_cstring(body: bytes, pos: int, size: int, name: str) -> tuple[str, int]:
    end = body.find(b"\x00", pos, pos + size)
    if end < 0:
        if len(body) < pos + size and body.find(b"\x00", pos) < 0:
            raise PduError(ESME_RINVMSGLEN, name, "body ends inside the field")
        raise PduError(ESME_RINVPARLEN, name, f"longer than {size - 1} octets or not terminated")
    try:
        return body[pos:end].decode("latin-1"), end + 1
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
        raise PduError(ESME_RINVPARLEN, name, "undecodable")


def decode_body(command_id: int, status: int, body: bytes) -> tuple[dict, dict]:
    fields = BODIES.get(command_id)
    if fields is None:
        raise PduError(ESME_RINVCMDID, "command_id", f"{command_id:#010x} is not supported")
    params: dict = {}
    pos = 0
    if command_id in _EMPTY_ON_ERROR and status != ESME_ROK and not body:
        return params, {}
    for name, kind, size in fields:
        if kind == "c":
            params[name], pos = _read_cstring(body, pos, size, name)
        elif kind == "b":
            if pos >= len(body):
                raise PduError(ESME_RINVMSGLEN, name, "body ends before the field")
            params[name] = body[pos]
            pos += 1
        else:  # sm_length + short_message
            if pos >= len(body):
                raise PduError(ESME_RINVMSGLEN, "sm_length", "body ends before the field")
            n = body[pos]
            if n > size:
                raise PduError(ESME_RINVPARLEN, "sm_length", f"{n} > {size}")
            if pos + 1 + n > len(body):
                raise PduError(ESME_RINVMSGLEN, "short_message", "shorter than sm_length")
            params[name] = body[pos + 1:pos + 1 + n]
            pos += 1 + n
    return params, decode_tlvs(body[pos:])


def decode_tlvs(data: bytes) -> dict:
    tlvs: dict = {}
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise PduError(ESME_RINVOPTPARSTREAM, "tlv", "truncated TLV header")
        tag, length = struct.unpack_from(">HH", data, pos)
        if pos + 4 + length > len(data):
            raise PduError(ESME_RINVOPTPARSTREAM, f"tlv {tag:#06x}", "length runs past the PDU")
        tlvs[tag] = data[pos + 4:pos + 4 + length]
        pos += 4 + length
    return tlvs


def decode(data: bytes) -> Pdu:
    """Decode one complete PDU (header + body)."""
    length, command_id, status, sequence = HEADER.unpack_from(data)
    if length != len(data):
        raise PduError(ESME_RINVCMDLEN, "command_length", f"{length} != {len(data)}")
    params, tlvs = decode_body(command_id, status, data[HEADER_LEN:])
    return Pdu(command_id, sequence, status, params, tlvs)


def _encode_cstring(value: str, size: int, name: str) -> bytes:
    raw = value.encode("latin-1") if isinstance(value, str) else bytes(value)
    if len(raw) >= size:
        raise ValueError(f"{name}: {len(raw)} octets, at most {size - 1}")
    return raw + b"\x00"


def encode_tlv(tag: int, value) -> bytes:
    if isinstance(value, int):
        value = bytes((value,))
    elif isinstance(value, str):
        value = value.encode("latin-1") + b"\x00"
    return struct.pack(">HH", tag, len(value)) + value


def encode(pdu: Pdu) -> bytes:
    out = bytearray()
    fields = BODIES.get(pdu.command_id, ())
    if not (pdu.command_id in _EMPTY_ON_ERROR and pdu.status != ESME_ROK):
        for name, kind, size in fields:
            value = pdu.params.get(name, "" if kind == "c" else (b"" if kind == "sm" else 0))
            if kind == "c":
                out += _encode_cstring(value, size, name)
            elif kind == "b":
                out.append(int(value) & 0xFF)
            else:
                if len(value) > size:
                    raise ValueError(f"short_message: {len(value)} octets, use message_payload")
                out.append(len(value))
                out += value
        for tag, value in pdu.tlvs.items():
            out += encode_tlv(tag, value)
    return HEADER.pack(HEADER_LEN + len(out), pdu.command_id, pdu.status, pdu.sequence) + out


def response(pdu: Pdu, status: int = ESME_ROK, **params) -> Pdu:
    return Pdu(pdu.command_id | RESP, pdu.sequence, status, params)


def generic_nack(sequence: int, status: int) -> bytes:
    return HEADER.pack(HEADER_LEN, GENERIC_NACK, status, sequence)


def tlv_int(tlvs: dict, tag: int) -> int | None:
    raw = tlvs.get(tag)
    if raw is None:
        return None
    if not 1 <= len(raw) <= 4:
        raise PduError(ESME_RINVOPTPARAMVAL, f"tlv {tag:#06x}", "bad integer length")
    return int.from_bytes(raw, "big")


def parse_udh(payload: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    """Split a TS 23.040 §9.2.3.24 user data header; returns (concat info, text octets).

    Concatenation IEIs 0x00 (8-bit reference) and 0x08 (16-bit reference).
    """
    if not payload:
        raise PduError(ESME_RINVESMCLASS, "short_message", "UDHI set but no header")
    udhl = payload[0]
    if 1 + udhl > len(payload):
        raise PduError(ESME_RINVESMCLASS, "short_message", "UDH longer than the message")
    udh, rest = payload[1:1 + udhl], payload[1 + udhl:]
    concat = None
    pos = 0
    while pos + 2 <= len(udh):
        iei, iel = udh[pos], udh[pos + 1]
        data = udh[pos + 2:pos + 2 + iel]
        if len(data) != iel:
            raise PduError(ESME_RINVESMCLASS, "short_message", "truncated UDH element")
        if iei == 0x00 and iel == 3:
            concat = (data[0], data[1], data[2])
        elif iei == 0x08 and iel == 4:
            concat = ((data[0] << 8) | data[1], data[2], data[3])
        pos += 2 + iel
    return concat, rest
