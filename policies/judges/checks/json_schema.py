"""Valid JSON against a JSON Schema (2020-12); the schema's patterns run on RE2, remote ``$ref`` are refused."""

import json
from typing import Annotated, Any

import re2
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError, ValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from policies.judges.checks.common import Check, quoted
from policies.judges.checks.re2_patterns import re2_compiled, re2_error

_SCHEMA_MAX_CHARS = 100_000
_DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
# Values under these keywords are data, not schemas; under the maps, keys are names.
_SCHEMA_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_SCHEMA_WATCHED = frozenset({"$ref", "$dynamicRef", "$id", "pattern"})


def _schema_walk(node: Any, path: str = "$") -> list[tuple[str, str, Any]]:
    """Every reference, $id and regular expression in a schema: (where, keyword, value).

    Each patternProperties key is reported as keyword "patternProperties", and the
    mere presence of unevaluatedProperties as that keyword.
    """
    found = []
    if isinstance(node, list):
        for index, value in enumerate(node):
            found += _schema_walk(value, f"{path}[{index}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in _SCHEMA_WATCHED and isinstance(value, str):
                found.append((f"{path}.{key}", key, value))
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                for name, subschema in value.items():
                    if key == "patternProperties":
                        found.append((f"{path}.{key}", key, name))
                    found += _schema_walk(subschema, f"{path}.{key}.{name}")
            elif key not in _SCHEMA_DATA_KEYWORDS:
                if key == "unevaluatedProperties":
                    found.append((f"{path}.{key}", key, None))
                found += _schema_walk(value, f"{path}.{key}")
    return found


def _json_schema_valid(schema: dict) -> dict:
    if len(json.dumps(schema)) > _SCHEMA_MAX_CHARS:
        raise ValueError(f"schema is too large (at most {_SCHEMA_MAX_CHARS} characters as JSON)")
    declared = schema.get("$schema")
    if declared is not None and str(declared).rstrip("#") != _DRAFT_2020_12:
        raise ValueError(f"only JSON Schema draft 2020-12 is supported ($schema {declared!r})")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        raise ValueError(f"not a valid JSON Schema (draft 2020-12): {error.message} at {error.json_path}") from None
    found = _schema_walk(schema)
    keywords = {keyword for _, keyword, _ in found}
    for path, keyword, value in found:
        if keyword in ("$ref", "$dynamicRef") and not value.startswith("#"):
            raise ValueError(
                f"{path}: only references within the schema ('#/$defs/...') are allowed, not {value!r}; "
                "outside documents are never fetched"
            )
        if keyword in ("pattern", "patternProperties"):
            try:
                re2_compiled(value)
            except re2.error as error:
                raise ValueError(
                    f"{path}: {quoted(value)} is not a valid RE2 regular expression: {re2_error(error)}"
                ) from None
    if "unevaluatedProperties" in keywords and "patternProperties" in keywords:
        # jsonschema would run those patterns with Python's backtracking re; everything else here uses RE2.
        raise ValueError("unevaluatedProperties cannot be combined with patternProperties in one schema")
    # A nested $id moves the base of the references below it; those are left to the validator.
    if not any(keyword == "$id" and path != "$.$id" for path, keyword, _ in found):
        resolver = Registry().resolver_with_root(DRAFT202012.create_resource(schema))
        for path, keyword, value in found:
            if keyword == "$ref":
                try:
                    resolver.lookup(value)
                except Unresolvable:
                    raise ValueError(f"{path}: {value!r} points at nothing in the schema") from None
    return schema


class JsonSchemaParams(BaseModel):
    """Fails an output that is not JSON or does not validate against a JSON Schema."""

    model_config = ConfigDict(
        extra="forbid", strict=True, validate_by_alias=True, validate_by_name=True, serialize_by_alias=True
    )

    schema_: Annotated[dict[str, Any], AfterValidator(_json_schema_valid)] = Field(
        alias="schema",
        description="A JSON Schema (draft 2020-12) the whole output, parsed as JSON, must satisfy. Only "
        "references within the schema ('#/$defs/...') are allowed. 'pattern' and 'patternProperties' use RE2 "
        "syntax. 'format' is asserted for the formats the server can check (for example email, date, ipv4, uuid).",
    )


def _pattern_keyword(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and re2_compiled(pattern).search(instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties_keyword(validator, pattern_properties, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        compiled = re2_compiled(pattern)
        for key, value in instance.items():
            if compiled.search(key) is not None:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties_keyword(validator, additional, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = [re2_compiled(pattern) for pattern in schema.get("patternProperties", {})]
    extras = [
        key
        for key in instance
        if key not in properties and not any(pattern.search(key) is not None for pattern in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        extras.sort()
        names = ", ".join(_short_repr(extra, 20) for extra in extras[:3]) + (", …" if len(extras) > 3 else "")
        yield ValidationError(
            f"Additional properties are not allowed ({names} {'was' if len(extras) == 1 else 'were'} unexpected)"
        )


_SchemaValidator = validators.extend(
    Draft202012Validator,
    {
        "pattern": _pattern_keyword,
        "patternProperties": _pattern_properties_keyword,
        "additionalProperties": _additional_properties_keyword,
    },
)


def _short_repr(value: Any, limit: int = 40) -> str:
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit])[:-1] + "…'"
    if isinstance(value, dict):
        return "{…}"
    if isinstance(value, list):
        return "[…]"
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _error_message(error: ValidationError, limit: int = 160) -> str:
    """jsonschema's message, with the offending value shown short (it may be long, or personal)."""
    message = error.message
    shown = repr(error.instance)
    if message.startswith(shown) and len(shown) > 40:
        message = _short_repr(error.instance) + message[len(shown) :]
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


class JsonSchemaCheck(Check):
    kind = "json_schema"

    def __init__(self, params: JsonSchemaParams):
        # An empty registry: nothing outside the schema is ever fetched.
        self.validator = _SchemaValidator(
            params.schema_, registry=Registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
        )

    def _run(self, text: str) -> tuple[bool, str]:
        try:
            instance = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as error:
            hint = " (it is wrapped in a ``` code fence)" if text.lstrip().startswith("```") else ""
            where = f"line {error.lineno} column {error.colno}"
            return False, f"output is not valid JSON: {error.msg} at {where}{hint}"
        except ValueError as error:
            return False, f"output is not valid JSON: {error}"
        except RecursionError:
            return False, "output is not valid JSON: nested too deeply"
        try:
            error = next(self.validator.iter_errors(instance), None)
        except RecursionError:
            return False, "output is nested too deeply to validate"
        if error is None:
            return True, "output is valid JSON matching the schema"
        return False, f"does not match the schema at {error.json_path}: {_error_message(error)}"
