"""HTTP Basic authentication for the three users of F-301.

admin sees everything; ``user`` and ``sms`` exist but are disabled until the admin
enables them.  Passwords are compared in constant time, and a failed login gets the
same answer whether the user exists, is disabled or typed a wrong password.
"""

from __future__ import annotations

import base64
import hmac

from twisted.logger import Logger

from goip_tw.config.schema import LEVELS

log = Logger()
REALM = "goip-tw"


def parse_basic(header: bytes | None) -> tuple[str, str] | None:
    if not header or not header.startswith(b"Basic "):
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = raw.partition(":")
    return (user, password) if sep else None


def check_user(users_cfg, user: str, password: str) -> str | None:
    """The level of a valid login, or None."""
    accounts = {
        "admin": (True, users_cfg.admin_password),
        "user": (users_cfg.user_enabled, users_cfg.user_password),
        "sms": (users_cfg.sms_enabled, users_cfg.sms_password),
    }
    enabled, expected = accounts.get(user, (False, "\0invalid"))
    ok = hmac.compare_digest(password.encode("utf-8"), expected.encode("utf-8"))
    return user if (ok and enabled) else None


def allowed(level: str, needed: str) -> bool:
    """admin may do everything; user what user and sms may; sms only sms things."""
    return LEVELS.index(level) <= LEVELS.index(needed)


def authenticate(request, users_cfg, needed: str = "admin") -> str | None:
    """The caller's level if it may use a resource needing ``needed``; else sets up a 401/403."""
    creds = parse_basic(request.getHeader(b"authorization"))
    level = check_user(users_cfg, *creds) if creds else None
    if level is None:
        if creds:
            log.warn("web auth failure for {user} from {address}",
                     user=creds[0], address=request.getClientAddress().host)
        request.setResponseCode(401)
        request.setHeader(b"WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"'.encode())
        return None
    if not allowed(level, needed):
        request.setResponseCode(403)
        return None
    return level
