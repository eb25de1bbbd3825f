"""Table tests for dial rules: every Appendix E example (F-1701) plus edge cases."""

import pytest

from goip_tw.calls.dialrules import (
    MAX_RULES_LENGTH, DialRuleError, NumberRejected, parse_dial_rules, rewrite,
    validate_dial_rules)

# (rules, number, strict, expected) -- expected None means rejected (strict).
CASES = [
    # Appendix E example 1..5
    ("86:-86", "8613012345678", False, "13012345678"),
    ("+86:-+86", "+8613012345678", False, "13012345678"),
    (":+0", "13012345678", False, "013012345678"),
    ("01[3-8]:-0++86", "015912345678", False, "+8615912345678"),
    ("1[3-8]XXXXXXXXX:", "13012345678", False, "13012345678"),
    # combined example: first match wins, left to right
    ("13:+0|15:+0|17:+0", "15012345678", False, "015012345678"),
    ("13:+0|15:+0|17:+0", "18012345678", False, "18012345678"),
    ("13:+0|1:+9", "13012345678", False, "013012345678"),
    ("1:+9|13:+0", "13012345678", False, "913012345678"),
    # no match leaves the number alone
    ("86:-86", "13012345678", False, "13012345678"),
    # `-+` : second operator literal
    ("+86:-+86", "8613012345678", False, "8613012345678"),
    (":--1", "-15", False, "5"),
    (":+-1", "5", False, "-15"),
    # ranges
    ("01[3-8]:-0++86", "012912345678", False, "012912345678"),
    ("01[3-8]:-0++86", "018912345678", False, "+8618912345678"),
    ("01[3-8]:-0++86", "019912345678", False, "019912345678"),
    ("[0-0]:-0", "0123", False, "123"),
    # wildcard, both cases
    ("X5:+00", "35", False, "0035"),
    ("x5:+00", "35", False, "0035"),
    ("X5:+00", "+5", False, "+5"),
    # condition longer than number never matches
    ("12345:+0", "123", False, "123"),
    # empty condition matches all, including the empty number
    (":+0", "", False, "0"),
    # empty rules: unchanged
    ("", "123", False, "123"),
    ("", "123", True, "123"),
    # several operations, in order
    (":+1+2", "9", False, "219"),
    ("9:-9+8-8", "95", False, "5"),
    # delete of an absent prefix deletes nothing
    ("1:-2", "123", False, "123"),
    # *, # in conditions and numbers
    ("*21*:-*21*", "*21*100#", False, "100#"),
    # strict mode: full match incl. length
    ("1[3-8]XXXXXXXXX:", "13012345678", True, "13012345678"),
    ("1[3-8]XXXXXXXXX:", "1301234567", True, None),
    ("1[3-8]XXXXXXXXX:", "130123456789", True, None),
    ("1[3-8]XXXXXXXXX:", "12012345678", True, None),
    # strict: the first FULLY matching rule applies, not a shorter prefix one
    ("13:+0|1[3-8]XXXXXXXXX:+9", "13012345678", True, "913012345678"),
    ("13:+0|1[3-8]XXXXXXXXX:+9", "13", True, "013"),
    # strict with an empty condition: matches everything
    ("1[3-8]XXXXXXXXX:|:+0", "555", True, "0555"),
    # whitespace around the whole list is ignored
    ("  86:-86 ", "8613012345678", False, "13012345678"),
]


@pytest.mark.parametrize("rules,number,strict,expected", CASES)
def test_table(rules, number, strict, expected):
    if expected is None:
        with pytest.raises(NumberRejected) as e:
            rewrite(rules, number, strict)
        assert e.value.number == number
        result = parse_dial_rules(rules).match(number, strict)
        assert not result.allowed and result.rule is None
    else:
        assert rewrite(rules, number, strict) == expected


def test_result_names_matched_rule():
    rules = parse_dial_rules("13:+0|15:+1")
    result = rules.match("1500")
    assert result.rule.text == "15:+1"
    assert (result.original, result.number, result.allowed) == ("1500", "11500", True)
    assert rules.match("99").rule is None


def test_parsed_operations():
    rules = parse_dial_rules("01[3-8]:-0++86")
    (rule,) = rules.rules
    assert [(op.kind, op.operand) for op in rule.operations] == [("-", "0"), ("+", "+86")]
    assert len(rule.condition) == 3


@pytest.mark.parametrize("length,ok", [(MAX_RULES_LENGTH, True), (MAX_RULES_LENGTH + 1, False)])
def test_length_limit(length, ok):
    text = ":" + "+" + "1" * (length - 2)
    assert len(text) == length
    if ok:
        assert rewrite(text, "5") == "1" * (length - 2) + "5"
    else:
        with pytest.raises(DialRuleError) as e:
            parse_dial_rules(text)
        assert "140" in str(e.value)


@pytest.mark.parametrize("text,position,fragment", [
    ("86", 0, "':'"),
    ("86:-86|", 7, "empty rule"),
    ("|86:-86", 0, "empty rule"),
    ("8a:-86", 1, "'a'"),
    ("86:86", 3, "'+' or '-'"),
    ("86:-", 3, "needs characters"),
    ("86:-8+", 5, "needs characters"),
    ("[3-8:+1", 0, "[3-8]"),
    ("[8-3]:+1", 0, "empty range"),
    ("[38]:+1", 0, "[3-8]"),
    ("1:2:3", 3, "more than one"),
    ("1:+a", 3, "'a'"),
    ("1:+1a", 4, "'a'"),
    ("1 :+1", 1, "' '"),
    ("-1:+0", 0, "'-'"),
])
def test_errors_name_the_position(text, position, fragment):
    with pytest.raises(DialRuleError) as e:
        parse_dial_rules(text)
    assert e.value.position == position
    assert fragment in str(e.value)
    assert validate_dial_rules(text) == str(e.value)


def test_validate_ok_and_none():
    assert validate_dial_rules("86:-86|:+0") is None
    assert validate_dial_rules(None) is None
    assert not parse_dial_rules(None)
    assert not parse_dial_rules("")
    assert parse_dial_rules("1:")


def test_non_text_rejected():
    with pytest.raises(DialRuleError):
        parse_dial_rules(86)


from hypothesis import given, settings, strategies as st  # noqa: E402

RULE_CHARS = st.text(alphabet="0123456789+-:|[]Xx*# a", max_size=60)


@settings(max_examples=300, deadline=None)
@given(RULE_CHARS, st.text(alphabet="0123456789+*#", max_size=20), st.booleans())
def test_any_text_parses_or_fails_cleanly(text, number, strict):
    """Bad rules are a DialRuleError naming a position, never another exception;
    good rules rewrite any number or refuse it (strict) with NumberRejected."""
    try:
        rules = parse_dial_rules(text)
    except DialRuleError as e:
        assert e.position is None or 0 <= e.position <= len(text.strip())
        return
    try:
        out = rules.rewrite(number, strict)
    except NumberRejected:
        assert strict
        return
    assert isinstance(out, str)
