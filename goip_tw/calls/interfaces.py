"""The small interfaces the call controller speaks through.

Calls are gateway logic: they never parse SIP, AT or RTP.  Each protocol package
is reached through one of these interfaces; ``sipside.py`` and ``modemside.py`` map
them onto the real ``goip_tw.sip`` and ``goip_tw.modem`` objects, the media service
(``goip_tw.media.service``) implements IMediaSide itself, and
the unit tests use recording fakes with the same signatures.

Listener methods are called by the protocol side when something happens; the
controller registers itself as the listener of every leg and mobile call it owns.
"""

from __future__ import annotations

import attrs
from zope.interface import Attribute, Interface


# --- SIP side ----------------------------------------------------------------------

@attrs.frozen
class SipOffer:
    """An INVITE the SIP layer admitted (F-425) and hands to the controller.

    ``own_number``: the request was for the gateway's own registered number (or a
    line's own account), which means two-stage dialing, outgoing direction.
    ``lines``: candidate lines already chosen by the SIP layer's prefix routing
    (F-411) or the account, or None to route here; ``number``: what to dial when
    the routing stripped a prefix (None = ``callee``), ``callee`` staying the
    number as dialled for the CDR.
    """

    caller: str
    callee: str
    call_id: str
    own_number: bool = False
    lines: tuple[int, ...] | None = None
    number: str | None = None


class ISipLeg(Interface):
    """One SIP dialog of a call, either direction."""

    call_id = Attribute("The SIP Call-ID.")
    codec = Attribute("Negotiated codec name once known, else None.")

    def set_listener(listener):
        """Where to deliver ISipLegListener events from now on."""

    def ringing():
        """Send 180 Ringing (server legs only)."""

    def early_media():
        """Send 183 Session Progress with SDP: early media flows (server legs only)."""

    def answer():
        """Send 200 OK with SDP (server legs only)."""

    def reject(code, reason=None):
        """Final error response to the INVITE (server legs, before answer)."""

    def hangup():
        """End the dialog: BYE when established, CANCEL/reject before."""

    def hold(mode="sendonly"):
        """re-INVITE putting the far end on hold (call waiting, F-465); Deferred[status]."""

    def resume():
        """re-INVITE taking the far end off hold; Deferred[status]."""


class ISipLegListener(Interface):
    def leg_ringing(leg):
        """The far end rings (180 on a leg we originated)."""

    def leg_early_media(leg):
        """The far end sends early media (183 with SDP)."""

    def leg_answered(leg):
        """200 OK on a leg we originated."""

    def leg_dtmf(leg, digit):
        """A digit from the SIP side: RFC 4733 or SIP INFO (F-427)."""

    def leg_hold(leg, held):
        """The SIP side put the call on hold (True) or resumed it (False) by re-INVITE."""

    def leg_ended(leg, code, reason):
        """The leg is over: BYE/CANCEL (code None) or a final error response/timeout."""


class ISipSide(Interface):
    def originate(target, caller_id, cid_mode, line, listener):
        """INVITE ``target`` (an extension for the registrar/trunk, or ``user@host:port``).

        ``cid_mode`` is F-461's off/rpid/from/pai: the SIP side puts ``caller_id``
        into the From user, Remote-Party-ID or P-Asserted-Identity.  Returns an
        ISipLeg whose events go to ``listener``.
        """


# --- mobile side -------------------------------------------------------------------

@attrs.frozen
class LineStatus:
    """A line as the controller needs to see it (from the modem and SIM layers)."""

    number: int
    enabled: bool = True
    registered: bool = True
    slot: str | None = None
    iccid: str | None = None
    within_limits: bool = True
    talk_seconds: int = 0
    busy: bool = False          # the module still has a call (e.g. being released)


class IMobileCall(Interface):
    """One voice call on a module (ATD / RING)."""

    line = Attribute("The line number.")

    def set_listener(listener):
        """Where IMobileCallListener events go."""

    def answer():
        """ATA."""

    def hangup():
        """End (or reject, while ringing) this call."""

    def send_dtmf(digits, duration_ms):
        """Send DTMF to the remote phone (AT+VTS)."""


class IMobileCallListener(Interface):
    def mobile_alerting(mcall):
        """The remote phone rings (outgoing call)."""

    def mobile_connected(mcall):
        """The remote phone answered (outgoing call)."""

    def mobile_dtmf(mcall, digit):
        """A digit detected from the mobile side (module URC or in-band detector)."""

    def mobile_ended(mcall, cause, text):
        """The call ended; ``cause`` is the 3GPP TS 24.008 cause (AT+CEER) or None."""


class IMobileLines(Interface):
    def line_numbers():
        """All configured line numbers, in order."""

    def status(line):
        """LineStatus of ``line``."""

    def dial(line, number, listener):
        """ATD ``number`` on ``line``; returns an IMobileCall."""

    def chld(line, n):
        """AT+CHLD=<n> on ``line`` (3GPP TS 22.030/27.007 call hold and waiting)."""


# --- media -------------------------------------------------------------------------

@attrs.frozen
class MediaStats:
    codec: str | None = None
    loss: float | None = None
    jitter_ms: float | None = None
    one_way: bool = False


class IStoppable(Interface):
    def stop():
        """Stop; idempotent.  A bridge returns its MediaStats."""


class IMediaSide(Interface):
    def bridge(line, leg):
        """Connect the line's voice port and the leg's RTP both ways; IStoppable."""

    def tone_to_line(line, tone):
        """Play ``tone`` ('dial', 'ringback', 'busy', 'waiting') to the mobile caller."""

    def tone_to_leg(leg, tone):
        """Play ``tone`` to the SIP side (two-stage dialing, outgoing direction)."""

    def detect_line_dtmf(line, callback):
        """In-band DTMF detection on the mobile audio; callback(digit)."""

    def detect_leg_dtmf(leg, callback):
        """In-band DTMF detection on the SIP audio (F-427 in-band mode)."""

    # Optional: ``set_dtmf_mode(leg, mode)`` -- the leg's line mode (F-427 per line),
    # given before the leg's first SDP; media without it uses its global mode.
