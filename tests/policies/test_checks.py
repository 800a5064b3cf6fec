"""Built-in deterministic judges, without the database: PII, banned, length, JSON Schema, disclaimer."""

import json
import time

import pytest
from pydantic import ValidationError

from policies.judges.base import JudgeInput
from policies.judges.checks import pii as pii_module
from policies.judges.registry import BUILTIN_KINDS, JUDGE_KINDS, judge_compile, judge_params_validate


def run(kind, params, output):
    return judge_compile(kind, params)(JudgeInput(output=output))


def error_messages(kind, params):
    with pytest.raises(ValidationError) as caught:
        judge_params_validate(kind, params)
    return [(error["loc"], error["msg"]) for error in caught.value.errors()]


def pii(output, detect=None):
    return run("pii", {} if detect is None else {"detect": detect}, output)


# PII: cards ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        "Charge it to 4242 4242 4242 4242 please.",
        "card: 4242-4242-4242-4242",
        "4242424242424242",
        "Amex 3782 822463 10005 on file",
        "card 4242 4242 4242 4242 12/26",  # the expiry runs on; whole groups are tried
        "Order 12345 4242 4242 4242 4242",
    ],
)
def test_luhn_valid_card_numbers_fail(output):
    verdict = pii(output)
    assert verdict.result == "fail"
    assert verdict.score == 0.0
    assert "card number" in verdict.rationale


@pytest.mark.parametrize(
    "output",
    [
        "Charge it to 4242 4242 4242 4241 please.",  # Luhn fails
        "4242-4242-4242-4241",
        "4242 4242 4242",  # 12 digits
        "12345678901234567890123",  # too long to be a card
        "pi is 3.1415926535897932384626",
        "4242  4242  4242  4242",  # double spaces are not card formatting
    ],
)
def test_numbers_failing_luhn_or_shape_are_not_cards(output):
    verdict = pii(output, detect=["card"])
    assert verdict.result == "pass", verdict.rationale
    assert verdict.score == 1.0


# PII: IBANs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        "Pay to GB82 WEST 1234 5698 7654 32 by Friday.",
        "IBAN: DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "NL91ABNA0417164300.",
        "BE68 5390 0754 7034 AND more",  # a capitalised word after a full group is not swept in
    ],
)
def test_valid_ibans_fail(output):
    verdict = pii(output, detect=["iban"])
    assert verdict.result == "fail"
    assert "1 IBAN" in verdict.rationale


@pytest.mark.parametrize(
    "output",
    [
        "Pay to GB82 WEST 1234 5698 7654 33 by Friday.",  # last digit changed
        "GB83 WEST 1234 5698 7654 32",  # check digits changed
        "IBAN: DE89 3704 0044 0532 0130 01",
        "DE89370400440532013001",
        "AB12 CDEF",  # too short
    ],
)
def test_ibans_failing_mod_97_pass(output):
    assert pii(output).result == "pass"


# PII: phones -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        "Call +44 20 7946 0958 today",
        "+44 (0)20 7946 0958",
        "+1 (415) 555-2671",
        "+14155552671",
        "+33 6 12 34 56 78",
        "+49 30 1234567",
        "0044 20 7946 0958",
        "Call (415) 555-2671 now",
        "415-555-2671",
        "415.555.2671",
        "1-800-555-1234",
        "020 7946 0958",
        "(030) 1234567",
        "06 12 34 56 78",
        "06.12.34.56.78",
        "0612345678",
    ],
)
def test_phone_numbers_fail(output):
    verdict = pii(output, detect=["phone"])
    assert verdict.result == "fail"
    assert "1 phone number" in verdict.rationale


@pytest.mark.parametrize(
    "output",
    [
        "In 2023 we grew; in 2024 too.",
        "Revenue was $1,234,567.89 and costs €12.345,67.",
        "Amount: 12 345 678 EUR",
        "Your order #123456789 has shipped.",
        "Order ORD-00123456 and ref 0012345678",
        "ID 5551234567",  # a bare 10-digit run: no format, no trunk 0, no +
        "Released 2024-01-15, updated 01.02.2024 10:30",
        "Server 192.168.1.1 on port 8080",
        "Versions 1.2.3 and 10.20.30",
        "Coordinates 48.8566, 2.3522",
        "The years 1999 2000 2001 2002",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "Invoice INV-0123456789 and v3.0123456789",  # a trunk-0 run inside an identifier or a decimal
        "Net change +1 234 567",  # 7 digits are too few for a phone number
    ],
)
def test_ordinary_numbers_are_not_personal_data(output):
    verdict = pii(output)
    assert verdict.result == "pass", verdict.rationale


def test_a_card_number_is_not_also_a_phone_number():
    verdict = pii("4242 4242 4242 4242")
    assert verdict.rationale == "found 1 card number (ending 4242)"


# PII: emails -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        "Write to john.doe@example.com.",
        "mailto:Jane.O'Neil+news@mail.example.co.uk, thanks",
        "(x@example.org)",
        "contact: ÉLODIE@exemple.fr",
    ],
)
def test_email_addresses_fail(output):
    verdict = pii(output, detect=["email"])
    assert verdict.result == "fail"
    assert "1 email address" in verdict.rationale


@pytest.mark.parametrize(
    "output",
    ["x@localhost", "follow @example on social", "john at example dot com", "john@example", "a@b.c", "@@@"],
)
def test_non_email_addresses_pass(output):
    assert pii(output, detect=["email"]).result == "pass"


# PII: rationale and configuration --------------------------------------------------


def test_rationale_names_what_was_found_without_repeating_it():
    output = (
        "Hi John, your email john.doe@example.com, phone +44 20 7946 0958, "
        "card 4242 4242 4242 4242 and IBAN GB82 WEST 1234 5698 7654 32 are on file."
    )
    verdict = pii(output)
    assert verdict.result == "fail"
    assert verdict.rationale == (
        "found 1 email address (j***@example.com), 1 phone number (ending 58), "
        "1 card number (ending 4242) and 1 IBAN (GB…5432)"
    )
    compact = verdict.rationale.replace(" ", "").replace("-", "")
    for secret in ["john.doe", "john", "442079460958", "79460958", "4242424242424242", "GB82WEST", "12345698765432"]:
        assert secret not in compact


def test_a_one_letter_local_part_is_not_shown():
    assert pii("a@example.com").rationale == "found 1 email address (***@example.com)"


def test_repeated_values_are_counted_once_and_examples_are_capped():
    output = " ".join(f"user{n}@example.com" for n in range(5)) + " again user0@EXAMPLE.com"
    rationale = pii(output).rationale
    assert rationale == "found 5 email addresses (u***@example.com, u***@example.com, u***@example.com, …)"


def test_only_the_kinds_asked_for_are_reported():
    output = "john@example.com, 4242 4242 4242 4242"
    assert pii(output, detect=["email"]).rationale == "found 1 email address (j***@example.com)"
    assert pii(output, detect=["card"]).rationale == "found 1 card number (ending 4242)"
    assert pii(output, detect=["phone", "iban"]).rationale == "no phone number or IBAN found"


def test_pii_pass_says_what_was_checked():
    verdict = pii("Nothing personal here.")
    assert verdict.result == "pass"
    assert verdict.score == 1.0
    assert verdict.rationale == "no email address, phone number, card number or IBAN found"


@pytest.mark.parametrize("output", ["", "   ", None])
def test_odd_outputs_still_get_an_answer(output):
    verdict = pii(output)
    assert verdict.result == "pass"
    assert verdict.latency_ms >= 0


@pytest.mark.parametrize(
    "unit", ["1 ", "0-", "a@", "a.", "+1 ", "GB82 WEST ", "(0)", "415-555-", "x@" + "b." * 30 + "1 "]
)
def test_pathological_outputs_are_scanned_in_linear_time(unit):
    output = unit * (100_000 // len(unit))
    started = time.perf_counter()
    pii(output)
    assert time.perf_counter() - started < 3  # about 0.2 s; quadratic behaviour would take minutes


def test_pii_params_default_to_every_kind():
    assert judge_params_validate("pii", {}).detect == ["email", "phone", "card", "iban"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"detect": []}, "List should have at least 1 item after validation, not 0"),
        ({"detect": ["email", "email"]}, "Value error, list each kind once; repeated: email"),
        ({"detect": ["ssn"]}, "Input should be 'email', 'phone', 'card' or 'iban'"),
        ({"detect": ["email"], "mask": True}, "Extra inputs are not permitted"),
    ],
)
def test_pii_params_errors(params, message):
    assert message in [msg for _, msg in error_messages("pii", params)]


# Banned ---------------------------------------------------------------------------


def banned(output, **params):
    return run("banned", params, output)


def test_banned_phrases_match_whole_words_case_insensitively():
    assert banned("You ASS.", phrases=["ass"]).result == "fail"
    assert banned("A classy class act; assets assessed.", phrases=["ass"]).result == "pass"
    assert banned("He said: Guaranteed\n\t returns!", phrases=["guaranteed  returns"]).result == "fail"
    assert banned("guaranteedreturns", phrases=["guaranteed returns"]).result == "pass"


def test_banned_phrase_boundaries_are_unicode_aware():
    assert banned("Un café crème", phrases=["café"]).result == "fail"
    assert banned("Les cafés", phrases=["café"]).result == "pass"
    assert banned("Un café", phrases=["caf"]).result == "pass"
    assert banned("STRAßE gesperrt", phrases=["straße"]).result == "fail"


def test_banned_phrase_edges_that_are_not_word_characters_match_anywhere():
    assert banned("I like c++code", phrases=["C++"]).result == "fail"
    assert banned("call 911!!", phrases=["!!"]).result == "fail"


def test_case_sensitive_applies_to_phrases_and_patterns():
    assert banned("You ASS", phrases=["ass"], case_sensitive=True).result == "pass"
    assert banned("You ass", phrases=["ass"], case_sensitive=True).result == "fail"
    assert banned("ssn: 1", patterns=[r"\bSSN\b"]).result == "fail"
    assert banned("ssn: 1", patterns=[r"\bSSN\b"], case_sensitive=True).result == "pass"


def test_banned_rationale_names_what_matched():
    params = {"phrases": ["guaranteed returns", "risk-free"], "patterns": [r"\b\d{3}-\d{2}-\d{4}\b"]}
    verdict = banned("Guaranteed returns, risk-free! SSN 123-45-6789", **params)
    assert verdict.result == "fail"
    assert verdict.score == 0.0
    assert verdict.rationale == (
        r"contains banned phrase 'guaranteed returns', phrase 'risk-free', pattern '\b\d{3}-\d{2}-\d{4}\b'"
    )
    verdict = banned("all fine", **params)
    assert verdict.result == "pass"
    assert verdict.rationale == "no banned phrase or pattern found (2 phrases and 1 pattern checked)"


def test_banned_rationale_caps_the_list():
    verdict = banned("a b c d e", phrases=["a", "b", "c", "d", "e"])
    assert verdict.rationale == "contains banned phrase 'a', phrase 'b', phrase 'c' and 2 more"


def test_catastrophic_patterns_run_in_linear_time_on_re2():
    check = judge_compile("banned", {"patterns": ["(a+)+$", "(x+x+)+y", "(.*a){12}"]})
    output = "a" * 100_000 + "!"
    started = time.perf_counter()
    verdict = check(JudgeInput(output=output))
    assert time.perf_counter() - started < 1  # milliseconds on RE2; Python's re would never finish
    assert verdict.result == "fail"  # (.*a){12} does match
    assert verdict.rationale == "contains banned pattern '(.*a){12}'"
    assert check(JudgeInput(output="x" * 50_000)).result == "pass"


@pytest.mark.parametrize(
    ("patterns", "loc", "message"),
    [
        (["(a"], ("patterns", 0), "pattern '(a' is not a valid RE2 regular expression: missing ): (a"),
        (
            ["fine", "(?<=x)y"],
            ("patterns", 1),
            "pattern '(?<=x)y' is not a valid RE2 regular expression: invalid perl operator: (?<= "
            "(RE2 supports neither look-around nor backreferences)",
        ),
        (
            [r"(a)\1"],
            ("patterns", 0),
            r"pattern '(a)\1' is not a valid RE2 regular expression: invalid escape sequence: \1 "
            "(RE2 supports neither look-around nor backreferences)",
        ),
        (["a{1001}"], ("patterns", 0), "invalid repetition size: {1001}"),
        (["spam|"], ("patterns", 0), "pattern 'spam|' matches the empty string, so it would flag every output"),
    ],
)
def test_invalid_patterns_are_named_with_the_reason(patterns, loc, message):
    errors = error_messages("banned", {"patterns": patterns})
    assert len(errors) == 1
    assert errors[0][0] == loc
    assert message in errors[0][1]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "Value error, give at least one phrase or pattern"),
        ({"phrases": [], "patterns": []}, "Value error, give at least one phrase or pattern"),
        ({"phrases": ["  "]}, "Value error, must contain something other than whitespace"),
        ({"phrases": [""]}, "String should have at least 1 character"),
        ({"phrases": ["x"], "regex": ["y"]}, "Extra inputs are not permitted"),
        ({"phrases": "x"}, "Input should be a valid list"),
        ({"phrases": ["x"], "case_sensitive": "yes"}, "Input should be a valid boolean"),
    ],
)
def test_banned_params_errors(params, message):
    assert message in [msg for _, msg in error_messages("banned", params)]


# Length ----------------------------------------------------------------------------


def test_length_bounds_in_characters_and_words():
    params = {"min_chars": 5, "max_chars": 20, "max_words": 3}
    assert run("length", params, "hello there").rationale == (
        "11 characters and 2 words, within 5-20 characters and at most 3 words"
    )
    verdict = run("length", params, "hi")
    assert (verdict.result, verdict.rationale) == ("fail", "too short: 2 characters, at least 5 required")
    verdict = run("length", params, "x" * 21)
    assert (verdict.result, verdict.rationale) == ("fail", "too long: 21 characters, at most 20 allowed")
    verdict = run("length", params, "one two three four")
    assert (verdict.result, verdict.rationale) == ("fail", "too long: 4 words, at most 3 allowed")


def test_length_bounds_are_inclusive():
    params = {"min_chars": 3, "max_chars": 3, "min_words": 1, "max_words": 1}
    assert run("length", params, "abc").result == "pass"
    assert run("length", params, "ab").result == "fail"
    assert run("length", params, "abcd").result == "fail"
    assert run("length", params, "a b").result == "fail"


def test_length_counts_code_points_and_whitespace_separated_words():
    assert run("length", {"max_chars": 4}, "ça va").result == "fail"
    assert run("length", {"max_chars": 5}, "ça va").result == "pass"
    assert run("length", {"min_words": 3}, "one\ntwo\u00a0three").result == "pass"
    assert run("length", {"min_words": 1}, "").rationale == "too short: 0 words, at least 1 required"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "Value error, give at least one of min_chars, max_chars, min_words or max_words"),
        ({"min_chars": 10, "max_chars": 5}, "Value error, min_chars (10) must not exceed max_chars (5)"),
        ({"min_words": 3, "max_words": 2}, "Value error, min_words (3) must not exceed max_words (2)"),
        ({"min_chars": -1}, "Input should be greater than or equal to 0"),
        ({"max_chars": 10.0}, "Input should be a valid integer"),
        ({"max_chars": True}, "Input should be a valid integer"),
        ({"max_chars": 10, "max_tokens": 5}, "Extra inputs are not permitted"),
    ],
)
def test_length_params_errors(params, message):
    assert message in [msg for _, msg in error_messages("length", params)]


# JSON Schema -----------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "required": ["answer", "confidence"],
    "properties": {
        "answer": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "sources": {"type": "array", "items": {"$ref": "#/$defs/source"}},
    },
    "$defs": {"source": {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}}},
    "additionalProperties": False,
}


def json_check(output, schema=SCHEMA):
    return run("json_schema", {"schema": schema}, output)


def test_json_matching_the_schema_passes():
    verdict = json_check('{"answer": "yes", "confidence": 0.9, "sources": [{"url": "https://x.test"}]}')
    assert (verdict.result, verdict.score) == ("pass", 1.0)
    assert verdict.rationale == "output is valid JSON matching the schema"


@pytest.mark.parametrize(
    ("output", "rationale"),
    [
        (
            '{"answer": "yes", "confidence": 2}',
            "does not match the schema at $.confidence: 2 is greater than the maximum of 1",
        ),
        ('{"answer": "yes"}', "does not match the schema at $: 'confidence' is a required property"),
        (
            '{"answer": "yes", "confidence": 0.5, "sources": [{"link": "x"}]}',
            "does not match the schema at $.sources[0]: 'url' is a required property",
        ),
        ("[1, 2]", "does not match the schema at $: [1, 2] is not of type 'object'"),
    ],
)
def test_json_not_matching_the_schema_fails_naming_the_first_error(output, rationale):
    verdict = json_check(output)
    assert (verdict.result, verdict.score) == ("fail", 0.0)
    assert verdict.rationale == rationale


@pytest.mark.parametrize(
    ("output", "rationale"),
    [
        ("Sure! Here it is.", "output is not valid JSON: Expecting value at line 1 column 1"),
        ("", "output is not valid JSON: Expecting value at line 1 column 1"),
        (
            '```json\n{"answer": "yes", "confidence": 1}\n```',
            "output is not valid JSON: Expecting value at line 1 column 1 (it is wrapped in a ``` code fence)",
        ),
        ('{"answer": "yes", "confidence": NaN}', "output is not valid JSON: NaN is not valid JSON"),
        ("[" * 100_000, "output is not valid JSON: nested too deeply"),
    ],
)
def test_output_that_is_not_json_fails(output, rationale):
    verdict = json_check(output)
    assert verdict.result == "fail"
    assert verdict.rationale == rationale


def test_long_values_are_shown_short_in_schema_errors():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    verdict = json_check(json.dumps({"a": "x" * 500}), schema=schema)
    assert verdict.rationale == f"does not match the schema at $.a: '{'x' * 40}…' is not of type 'integer'"
    verdict = json_check(json.dumps({"a": {"nested": "object", "with": ["several", "values"]}}), schema=schema)
    assert verdict.rationale == "does not match the schema at $.a: {…} is not of type 'integer'"
    verdict = json_check(json.dumps({"a": {"b": 1}}), schema=schema)  # short values are shown as they are
    assert verdict.rationale == "does not match the schema at $.a: {'b': 1} is not of type 'integer'"
    verdict = json_check(json.dumps({f"{n}{'z' * 100}": 1 for n in range(7)}), schema=schema)
    assert verdict.rationale.endswith("were unexpected)")
    assert len(verdict.rationale) < 300


def test_params_round_trip_through_their_json_form():
    # judge_params_normalize stores model_dump(mode="json"); it must validate again, with "schema" as the key.
    stored = judge_params_validate("json_schema", {"schema": SCHEMA}).model_dump(mode="json")
    assert stored == {"schema": SCHEMA}
    for kind, params in {
        "pii": {},
        "banned": {"phrases": ["x"]},
        "length": {"max_chars": 10},
        "json_schema": {"schema": SCHEMA},
        "disclaimer": {"texts": ["x"]},
    }.items():
        stored = judge_params_validate(kind, params).model_dump(mode="json")
        assert judge_params_validate(kind, stored).model_dump(mode="json") == stored


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            {"type": "objekt"},
            "not a valid JSON Schema (draft 2020-12): 'objekt' is not valid under any of the given schemas at $.type",
        ),
        ({"minLength": -1}, "not a valid JSON Schema (draft 2020-12): -1 is less than the minimum of 0 at $.minLength"),
        (
            {"properties": {"a": {"$ref": "https://schemas.example/a.json"}}},
            "$.properties.a.$ref: only references within the schema ('#/$defs/...') are allowed",
        ),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "only JSON Schema draft 2020-12 is supported"),
    ],
)
def test_invalid_schemas_are_rejected_at_configuration_time(schema, message):
    errors = error_messages("json_schema", {"schema": schema})
    assert errors[0][0] == ("schema",)
    assert message in errors[0][1]


def test_schema_params_errors():
    assert error_messages("json_schema", {}) == [(("schema",), "Field required")]
    assert error_messages("json_schema", {"schema": "{}"}) == [(("schema",), "Input should be a valid dictionary")]
    assert error_messages("json_schema", {"schema": {}, "strict": True})[0][1] == "Extra inputs are not permitted"


def test_schema_patterns_run_on_re2():
    # jsonschema on its own would hand these to Python's backtracking re, on text the model wrote.
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}},
        "patternProperties": {"^(x+x+)+y$": {"type": "integer"}},
        "additionalProperties": False,
    }
    evil = "a" * 50_000 + "!"
    started = time.perf_counter()
    verdict = json_check(json.dumps({"code": evil}), schema=schema)
    assert verdict.result == "fail"
    assert "does not match '^(a+)+$'" in verdict.rationale
    verdict = json_check(json.dumps({"x" * 50_000: 1}), schema=schema)
    assert verdict.rationale.startswith("does not match the schema at $: Additional properties are not allowed ('xxx")
    assert time.perf_counter() - started < 1
    assert json_check('{"code": "aaa", "xxy": 1}', schema=schema).result == "pass"
    assert json_check('{"xxy": "one"}', schema=schema).rationale == (
        "does not match the schema at $.xxy: 'one' is not of type 'integer'"
    )


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            {"properties": {"a": {"pattern": "(?<=x)y"}}},
            "$.properties.a.pattern: '(?<=x)y' is not a valid RE2 regular expression: invalid perl operator: (?<=",
        ),
        (
            {"patternProperties": {r"(\w)\1": {}}},
            r"$.patternProperties: '(\w)\1' is not a valid RE2 regular expression: invalid escape sequence: \1",
        ),
        (
            {"patternProperties": {"^x": {}}, "unevaluatedProperties": False},
            "unevaluatedProperties cannot be combined with patternProperties in one schema",
        ),
    ],
)
def test_schema_patterns_must_be_re2(schema, message):
    errors = error_messages("json_schema", {"schema": schema})
    assert errors[0][0] == ("schema",)
    assert message in errors[0][1]


def test_const_values_are_data_not_references():
    schema = {"const": {"$ref": "https://not.a.reference"}}
    assert json_check('{"$ref": "https://not.a.reference"}', schema=schema).result == "pass"


def test_references_are_checked_wherever_they_are():
    # A property may be called "const" or "$ref": its value is still a schema.
    schema = {"properties": {"const": {"$ref": "https://schemas.example/a.json"}}}
    assert "only references within the schema" in error_messages("json_schema", {"schema": schema})[0][1]
    schema = {"properties": {"$ref": {"type": "string"}}}
    assert json_check('{"$ref": "x"}', schema=schema).result == "pass"


def test_local_references_must_resolve():
    errors = error_messages("json_schema", {"schema": {"items": {"$ref": "#/$defs/missing"}}})
    assert errors == [(("schema",), "Value error, $.items.$ref: '#/$defs/missing' points at nothing in the schema")]


# Disclaimer ------------------------------------------------------------------------


def test_disclaimer_any():
    params = {"texts": ["Not financial  advice", "Consult a professional"]}
    verdict = run("disclaimer", params, "This is NOT financial\nadvice.")
    assert (verdict.result, verdict.rationale) == ("pass", "contains required disclaimer 'Not financial advice'")
    verdict = run("disclaimer", params, "Buy now!")
    assert (verdict.result, verdict.score) == ("fail", 0.0)
    assert verdict.rationale == "none of the 2 required disclaimers found"
    verdict = run("disclaimer", {"texts": ["Not financial advice"]}, "Buy now!")
    assert verdict.rationale == "missing required disclaimer 'Not financial advice'"


def test_disclaimer_all():
    params = {"texts": ["Not financial advice", "Consult a professional"], "require": "all"}
    verdict = run("disclaimer", params, "Not financial advice. Consult a  professional.")
    assert (verdict.result, verdict.rationale) == ("pass", "contains all 2 required disclaimers")
    verdict = run("disclaimer", params, "Not financial advice.")
    assert (verdict.result, verdict.rationale) == (
        "fail",
        "missing 1 of 2 required disclaimers: 'Consult a professional'",
    )


def test_disclaimer_case_sensitive():
    params = {"texts": ["Not financial advice"], "case_sensitive": True}
    assert run("disclaimer", params, "not financial advice").result == "fail"
    assert run("disclaimer", params, "Not financial advice").result == "pass"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"texts": []}, "List should have at least 1 item after validation, not 0"),
        ({}, "Field required"),
        ({"texts": [" \n "]}, "Value error, must contain something other than whitespace"),
        ({"texts": ["x"], "require": "most"}, "Input should be 'any' or 'all'"),
        ({"texts": ["x"], "position": "end"}, "Extra inputs are not permitted"),
    ],
)
def test_disclaimer_params_errors(params, message):
    assert message in [msg for _, msg in error_messages("disclaimer", params)]


# API -------------------------------------------------------------------------------


def test_every_kind_has_a_documented_params_model():
    assert set(BUILTIN_KINDS) == {"pii", "banned", "length", "json_schema", "disclaimer"}
    for model in (JUDGE_KINDS[kind].params for kind in BUILTIN_KINDS):
        schema = model.model_json_schema()
        assert schema.get("additionalProperties") is False
        assert model.__doc__
        assert all(field.description for field in model.model_fields.values()), model


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown judge kind 'regex'; expected one of llm, pii, banned"):
        judge_params_validate("regex", {})
    with pytest.raises(ValueError, match="unknown judge kind 'regex'"):
        judge_compile("regex", {})


def test_the_model_the_schemas_and_the_runners_read_one_table():
    from policies.models import Judge, JudgeKind
    from policies.schemas import JudgeSpec

    assert JudgeKind.values == list(JUDGE_KINDS)
    assert [label for _, label in Judge._meta.get_field("kind").choices] == [s.label for s in JUDGE_KINDS.values()]
    assert JudgeSpec.model_json_schema()["properties"]["kind"]["enum"] == list(JUDGE_KINDS)


def test_builtin_check_takes_a_validated_model_or_a_dict():
    model = judge_params_validate("length", {"max_chars": 3})
    assert judge_compile("length", model)(JudgeInput(output="abcd")).result == "fail"
    with pytest.raises(ValidationError):
        judge_compile("length", {"max_chars": "3"})
    with pytest.raises(TypeError, match="pii judges take PiiParams, not LengthParams"):
        judge_compile("pii", model)


def test_a_check_is_reusable_and_times_itself():
    check = judge_compile("pii", {})
    first = check(JudgeInput(output="john@example.com"))
    second = check(JudgeInput(output="nothing"))
    assert (first.result, second.result) == ("fail", "pass")
    assert first.latency_ms > 0
    assert first.latency_ms < 1000


def test_a_bug_inside_a_check_becomes_an_error_verdict(monkeypatch):
    def broken(text, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(pii_module, "_pii_found", broken)
    verdict = pii("anything")
    assert (verdict.result, verdict.score) == ("error", None)
    assert verdict.rationale == "the pii check failed unexpectedly"
