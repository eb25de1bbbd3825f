"""The try-it-now demo (issue 7): a softphone account on the embedded proxy (F-415)
and the simulator's echo phone, announced in a fixed form scripts parse::

    softphone: sip:USER@HOST:PORT password=PASSWORD
    echo test number: NUMBER

The account is ``calls.demo_user`` with the embedded proxy's one client password
(``voip.proxy_password``, generated at random on first start and saved in the
config so it survives restarts).
"""

from __future__ import annotations

import secrets

import attrs

PASSWORD_BYTES = 12


def with_demo_account(config):
    """(config, changed): the embedded proxy on with a random password if it had none.

    The lead calls this only for the simulated default (no modems configured) and
    saves the returned config when ``changed``.
    """
    voip = config.voip
    if voip.proxy_enabled and voip.proxy_password:
        return config, False
    password = voip.proxy_password or secrets.token_urlsafe(PASSWORD_BYTES)
    voip = attrs.evolve(voip, proxy_enabled=True, proxy_password=password)
    return attrs.evolve(config, voip=voip), True


def demo_account(config) -> tuple[str, str]:
    """(user, password) of the demo softphone."""
    return config.calls.demo_user, config.voip.proxy_password


def demo_lines(config, host: str, port: int, echo_number: str | None) -> list[str]:
    """The console lines, exactly as scripts expect them."""
    user, password = demo_account(config)
    host = f"[{host}]" if ":" in host else host
    lines = [f"softphone: sip:{user}@{host}:{port} password={password}"]
    if echo_number:
        lines.append(f"echo test number: {echo_number}")
    return lines
