"""Reading template.yaml as CloudFormation sees it: short tags, defaults, resolved names."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
SETTINGS_SOURCE = (ROOT / "layer/python/embedding_engine/settings.py").read_text(encoding="utf-8")
FUNCTIONS = ("ApiFunction", "IndexingFunction")
NO_VALUE = {"Ref": "AWS::NoValue"}
# Variables the template may set that the settings code does not read: documented Powertools ones.
POWERTOOLS_VARIABLES = {"POWERTOOLS_LOG_LEVEL"}
# Pseudo parameters for evaluating names: a long region and a stack name with capitals.
PSEUDO = {
    "AWS::AccountId": "123456789012",
    "AWS::Region": "ap-southeast-4",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "My-Embeddings-Stack",
    "AWS::StackId": (
        "arn:aws:cloudformation:ap-southeast-4:123456789012:stack/My-Embeddings-Stack/"
        "8c6e3a50-1f2b-11ef-9b4c-0a1b2c3d4e5f"
    ),
}


class CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
    """YAML with CloudFormation's short tags: `!Ref X` -> {"Ref": X}, `!Sub s` -> {"Fn::Sub": s}..."""


def _short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix in {"Ref", "Condition"}:
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _short_tag)


@cache
def template() -> dict[str, Any]:
    loaded = yaml.load(TEMPLATE_PATH.read_text(encoding="utf-8"), Loader=CloudFormationLoader)
    assert isinstance(loaded, dict)
    return loaded


def resource(name: str) -> dict[str, Any]:
    found: dict[str, Any] = template()["Resources"][name]
    return found


def properties(name: str) -> dict[str, Any]:
    found: dict[str, Any] = resource(name)["Properties"]
    return found


def resources_of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: body for name, body in template()["Resources"].items() if body["Type"] == kind}


def default(parameter: str) -> Any:
    return template()["Parameters"][parameter]["Default"]


def number(parameter: str, key: str = "Default") -> float:
    return float(template()["Parameters"][parameter][key])


def events(function: str, kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: event["Properties"]
        for name, event in properties(function).get("Events", {}).items()
        if event["Type"] == kind
    }


def function_environment(function: str) -> dict[str, Any]:
    """A function's variables after SAM merges the Globals into it."""
    merged: dict[str, Any] = {}
    for source in (template().get("Globals", {}).get("Function", {}), properties(function)):
        merged.update(source.get("Environment", {}).get("Variables", {}))
    return merged


def evaluate(node: Any, names: dict[str, str] | None = None) -> Any:
    """The value of the intrinsics used for names and inputs, with parameter defaults and PSEUDO."""
    names = names or {}
    if isinstance(node, str | int | float | bool):
        return node
    assert isinstance(node, dict) and len(node) == 1, node
    [(function, argument)] = node.items()
    if function == "Ref":
        return names.get(argument) or PSEUDO.get(argument) or str(default(argument))
    if function == "Fn::Sub":
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        scope = {**names, **{key: str(evaluate(value, names)) for key, value in variables.items()}}
        return re.sub(r"\$\{([\w:]+)\}", lambda match: str(evaluate({"Ref": match[1]}, scope)), text)
    if function == "Fn::Select":
        index, items = argument
        return evaluate(items, names)[int(index)]
    if function == "Fn::Split":
        separator, text = argument
        return str(evaluate(text, names)).split(separator)
    raise AssertionError(f"no evaluator for {function}")


def walk(node: Any) -> Iterator[Any]:
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from walk(child)


def dockerfile_cmd() -> list[str]:
    match = re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.MULTILINE)
    assert match is not None
    command: list[str] = json.loads(match[1])
    return command
