"""The try-it-now demo (issue 7): a softphone account on the embedded proxy (F-415)
and the simulator's echo phone, announced in a fixed form scripts parse::

    softphone: sip:USER@HOST:PORT password=PASSWORD
    echo test number: NUMBER

The account is ``calls.demo_user`` with the embedded proxy's one client password
(``voip.proxy_password``), generated at random on first start and stored in the
config file (``ConfigManager.persist("voip", **demo_voip_settings(config))``) so it
survives restarts.  The echo number is the simulator's ``echo_number``.
"""

from __future__ import annotations

import secrets

PASSWORD_BYTES = 12


def demo_voip_settings(config) -> dict:
    """voip values to persist for the simulated default: the embedded proxy on, with a
    random password when it has none.  Empty when nothing needs to change."""
    voip = config.voip
    if voip.proxy_enabled and voip.proxy_password:
        return {}
    return {"proxy_enabled": True,
            "proxy_password": voip.proxy_password or secrets.token_urlsafe(PASSWORD_BYTES)}


def demo_account(config) -> tuple[str, str]:
    """(user, password) of the demo softphone."""
    return config.calls.demo_user, config.voip.proxy_password


def echo_number(config) -> str | None:
    simulator = getattr(config, "simulator", None)
    return getattr(simulator, "echo_number", None) or None


def demo_lines(config, host: str, port: int) -> list[str]:
    """The console lines, exactly as scripts expect them."""
    user, password = demo_account(config)
    host = f"[{host}]" if ":" in host else host
    lines = [f"softphone: sip:{user}@{host}:{port} password={password}"]
    number = echo_number(config)
    if number:
        lines.append(f"echo test number: {number}")
    return lines
