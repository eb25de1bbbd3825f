"""The sms_inbound config section: defaults load, bad values name their key."""

import pytest

from goip_tw.config.files import parse
from goip_tw.config.schema import ConfigErrors


def test_defaults_forward_nothing():
    c = parse({}).sms_inbound
    assert (c.forward_sip_target, c.forward_mobile_number, c.email_to) == ("", "", ())
    assert c.smtp_security == "starttls" and c.info_command


@pytest.mark.parametrize("key,value", [
    ("forward_mobile_number", "+86 136;rm"),
    ("email_to", ["owner@example.org\r\nBcc: x@y"]),
    ("email_from", "no-at-sign"),
    ("smtp_security", "ssl3"),
    ("smtp_port", 0),
    ("own_number_ussd_code", '*101#",AT'),
    ("forward_sip_target", "101\r\nVia: evil"),
    ("forward_lines", [0]),
])
def test_bad_values_name_the_key(key, value):
    with pytest.raises(ConfigErrors) as e:
        parse({"sms_inbound": {key: value}})
    assert f"sms_inbound.{key}" in str(e.value)


def test_good_values():
    c = parse({"sms_inbound": {"email_to": ["a@example.org"], "smtp_security": "tls",
                               "forward_lines": [1, 3], "forward_mobile_number": "+8613800000000",
                               "own_number_ussd_code": "*101#"}}).sms_inbound
    assert c.forward_lines == (1, 3) or c.forward_lines == [1, 3]
