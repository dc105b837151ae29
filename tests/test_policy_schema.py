"""The JSON Schema of policy files and the reference generated from it: current, and agreeing
with the validator."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from asr_resilience import cli
from asr_resilience.policy import check_policy, shipped_policies, shipped_policy_path
from asr_resilience.policy._json_schema import policy_schema, policy_schema_json
from asr_resilience.policy._reference import policy_reference

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "docs" / "policy.schema.json"
REFERENCE_FILE = ROOT / "docs" / "policy-reference.md"
BAD = Path(__file__).parent / "policies_bad"
VALIDATOR = jsonschema.Draft202012Validator(policy_schema())
SCHEMA_LINE = "# yaml-language-server: $schema=../../docs/policy.schema.json"

# Files of tests/policies_bad whose mistake is a single field's (type, bound, enum, unknown
# key): the schema refuses them as the validator does. The others (cross-field bounds,
# extends chains, regular expressions, YAML-level problems) are policy check's alone.
SCHEMA_REJECTS = [
    "unknown_top_key.yaml",
    "unknown_defaults_key.yaml",
    "unknown_backoff_key.yaml",
    "unknown_rule_key.yaml",
    "unknown_match_key.yaml",
    "string_for_int.yaml",
    "list_for_mapping.yaml",
    "mapping_for_list.yaml",
    "list_for_string.yaml",
    "transport_not_bool.yaml",
    "max_attempts_zero.yaml",
    "ratio_too_big.yaml",
    "failure_ratio_zero.yaml",
    "multiplier_below_one.yaml",
    "negative_min_per_second.yaml",
    "duration_parsecs.yaml",
    "duration_negative.yaml",
    "deadline_zero.yaml",
]

GOOD = [
    "version: 1\n",
    "version: 1\nextends: default\nconcurrency: {max: 10}\n",
    "version: 1\ndefaults: {deadline: 90, backoff: {initial: 0.1, jitter: none}}\n",
    "version: 1\nfleet: {enabled: true, quota: null, redis_url_env: MY_REDIS}\n",
    "version: 1\nrules:\n  - match: {codes: 5xxxxxxx, message: 'busy|overload'}\n"
    "    action: retry\n    backoff: {max: 2s}\n",
    "version: 1\nrules:\n  - {name: h, match: {http_status: [429, 5xx]}, action: retry}\n",
]


def _load(text: str) -> Any:
    return yaml.safe_load(text)


def test_schema_file_is_current() -> None:
    """docs/policy.schema.json is what `policy schema` generates today."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == policy_schema_json()


def test_reference_is_current() -> None:
    """docs/policy-reference.md is what `policy reference` generates from the schema today."""
    assert REFERENCE_FILE.read_text(encoding="utf-8") == policy_reference()


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    """The schema itself passes the metaschema."""
    jsonschema.Draft202012Validator.check_schema(policy_schema())


def test_cli_prints_the_schema_and_writes_the_reference(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`policy schema` prints the JSON; `policy reference --output` writes the Markdown."""
    assert cli.main(["policy", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == policy_schema()
    out = tmp_path / "ref.md"
    assert cli.main(["policy", "reference", "--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == policy_reference()


@pytest.mark.parametrize("name", shipped_policies())
def test_shipped_policy_names_the_schema_and_passes_it(name: str) -> None:
    """A shipped policy's first line points editors at the schema, and the schema accepts it."""
    path = shipped_policy_path(name)
    assert path is not None
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == SCHEMA_LINE
    # The link is relative to the source tree (an installed package has no docs/ beside it).
    source = ROOT / "asr_resilience" / "policies" / path.name
    assert (source.parent / SCHEMA_LINE.split("=", 1)[1]).resolve() == SCHEMA_FILE
    VALIDATOR.validate(_load(text))


@pytest.mark.parametrize("text", GOOD)
def test_good_policies_pass_the_schema_and_the_validator(text: str, tmp_path: Path) -> None:
    """A few valid policies are valid for both the schema and `policy check`."""
    VALIDATOR.validate(_load(text))
    path = tmp_path / "p.yaml"
    path.write_text(text)
    assert check_policy(path) == []


@pytest.mark.parametrize("name", SCHEMA_REJECTS)
def test_bad_policies_fail_the_schema(name: str) -> None:
    """Policies with a wrong field are refused by the schema as by the validator."""
    path = BAD / name
    assert check_policy(path) != []
    assert not VALIDATOR.is_valid(_load(path.read_text(encoding="utf-8")))


def _objects() -> list[tuple[str, dict[str, Any]]]:
    """(path in a policy, the schema object there) of every section, a rule, match and backoff."""
    schema = policy_schema()
    defs = schema["$defs"]
    out = [("", schema)]
    out += [(key, p) for key, p in schema["properties"].items() if p.get("type") == "object"]
    out += [("rules[0]", defs["rule"]), ("rules[0].match", defs["match"])]
    out += [("defaults.backoff", defs["backoff"])]
    return out


def _document(where: str, value: dict[str, Any]) -> dict[str, Any]:
    """A policy with ``value`` at ``where`` (a rule gets a match and an action around it)."""
    doc: dict[str, Any] = {"version": 1}
    if where == "":
        return {**doc, **value}
    if where.startswith("rules[0]"):
        rule: dict[str, Any] = {"match": {"transport": True}, "action": "retry"}
        if where == "rules[0]":
            rule.update(value)
        else:
            rule["match"] = {**rule["match"], **value}
        return {**doc, "rules": [rule]}
    if where == "defaults.backoff":
        return {**doc, "defaults": {"backoff": value}}
    return {**doc, where: value}


def _check(doc: dict[str, Any], tmp_path: Path) -> list[Any]:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    return check_policy(path)


@pytest.mark.parametrize(("where", "obj"), _objects(), ids=[w or "top" for w, _ in _objects()])
def test_schema_keys_are_the_validators(where: str, obj: dict[str, Any], tmp_path: Path) -> None:
    """Each object of the schema lists exactly the keys the validator names as allowed."""
    issues = _check(_document(where, {"no_such_key": 1}), tmp_path)
    messages = [i.message for i in issues if "unknown key" in i.message]
    assert len(messages) == 1
    allowed = re.sub(r".*expected one of ", "", messages[0]).split(", ")
    assert allowed == list(obj["properties"])


@pytest.mark.parametrize(("where", "obj"), _objects(), ids=[w or "top" for w, _ in _objects()])
def test_examples_pass_both(where: str, obj: dict[str, Any], tmp_path: Path) -> None:
    """Every field's example in the schema is accepted by the schema and by the validator."""
    examples = {k: p["examples"][0] for k, p in obj["properties"].items() if "examples" in p}
    if where == "":
        examples = {k: v for k, v in examples.items() if k != "extends"}  # no parent file here
    doc = _document(where, examples)
    VALIDATOR.validate(doc)
    assert _check(doc, tmp_path) == []


def _bounded() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for where, obj in _objects():
        for key, prop in obj["properties"].items():
            number = next((p for p in prop.get("anyOf", [prop]) if "maximum" in p), None)
            if number is not None:
                out.append((where, key, number))
    return out


@pytest.mark.parametrize(("where", "key", "number"), _bounded(), ids=lambda v: str(v))
def test_bounds_agree_with_the_validator(
    where: str, key: str, number: dict[str, Any], tmp_path: Path
) -> None:
    """Just above the maximum and just below the minimum, schema and validator both refuse."""
    low = number["minimum"] if "minimum" in number else number["exclusiveMinimum"]
    step = 1 if number["type"] == "integer" else 0.001
    for value in (number["maximum"] + step, low - (step if "minimum" in number else 0)):
        doc = _document(where, {key: value})
        assert not VALIDATOR.is_valid(doc), (key, value)
        assert _check(doc, tmp_path) != [], (key, value)
