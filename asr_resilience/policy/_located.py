"""YAML read into values that remember their file and line, for errors that point at them.

PyYAML's safe loader composes the document into nodes (which carry marks); we turn the nodes
into :class:`Located` values ourselves so that duplicate keys are an error, tags that would build
Python objects are refused, and aliases cannot expand into a bomb (every node visited counts
against a budget, shared aliases included). Before composing, one pass over the parser's events
(which PyYAML produces without recursion) refuses nesting deeper than ``MAX_DEPTH``: PyYAML's
composer recurses once per level and would end in a ``RecursionError``. Characters YAML does not
allow (NUL and other control characters) and malformed ``<<`` merge keys are issues with a line,
like every other mistake.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import yaml

from .._errors import PolicyIssue

NODE_BUDGET = 20_000
"""Values one policy document may expand to; real policies use a few hundred."""
MAX_DEPTH = 32
"""Mappings and lists nested in one another; real policies nest five deep."""


@dataclass(frozen=True, slots=True, repr=False)
class Located:
    """A YAML value (dict of str -> Located, list of Located, or a scalar) and where it was."""

    value: Any
    file: str
    line: int

    def __repr__(self) -> str:
        # Messages show values with !r: show them as the user wrote them, without wrappers.
        return repr(self.plain())

    def plain(self) -> Any:
        """The value with every nested Located unwrapped."""
        if isinstance(self.value, dict):
            return {key: child.plain() for key, child in self.value.items()}
        if isinstance(self.value, list):
            return [child.plain() for child in self.value]
        return self.value

    def issue(self, field: str, message: str) -> PolicyIssue:
        """An issue pointing at this value."""
        return PolicyIssue(self.file, self.line, field, message)


class YamlProblem(Exception):
    """The document cannot be read as a policy; carries the issue to report."""

    def __init__(self, issue: PolicyIssue) -> None:
        super().__init__(str(issue))
        self.issue = issue


def load_located(text: str, file: str) -> Located | None:
    """Parse one YAML document; None when it is empty. Raises YamlProblem on any YAML mistake."""
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise YamlProblem(PolicyIssue(file, line, "", "a NUL character is not allowed in YAML"))
    with _yaml_errors(text, file):
        _check_depth(text, file)
    loader = yaml.SafeLoader(text)
    try:
        with _yaml_errors(text, file):
            node = loader.get_single_node()
        if node is None:
            return None
        return _Converter(loader, file).convert(node, "")
    finally:
        loader.dispose()


@contextmanager
def _yaml_errors(text: str, file: str) -> Iterator[None]:
    """PyYAML's errors as one-line issues with the line they point at."""
    try:
        yield
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        reason = exc.problem or exc.context or "invalid YAML"
        raise YamlProblem(PolicyIssue(file, line, "", f"invalid YAML: {reason}")) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        reason = f"character #x{exc.character:04x} is not allowed in YAML"
        raise YamlProblem(PolicyIssue(file, line, "", f"invalid YAML: {reason}")) from None
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise YamlProblem(PolicyIssue(file, 1, "", f"invalid YAML: {reason}")) from None


def _check_depth(text: str, file: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH, walking the parser's events (no recursion)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark is not None else 1
                raise YamlProblem(
                    PolicyIssue(
                        file, line, "", f"mappings and lists are nested more than {MAX_DEPTH} deep"
                    )
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


class _Converter:
    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.budget = NODE_BUDGET

    def convert(self, node: yaml.Node, path: str, depth: int = 0) -> Located:
        self.budget -= 1
        line = node.start_mark.line + 1
        if self.budget < 0:
            raise YamlProblem(
                PolicyIssue(
                    self.file,
                    line,
                    path,
                    f"the document expands to more than {NODE_BUDGET} values "
                    "(aliases nested too deep?)",
                )
            )
        if isinstance(node, yaml.CollectionNode) and depth >= MAX_DEPTH:
            # Aliases can nest deeper than the text does (each anchor wrapping the previous).
            raise YamlProblem(
                PolicyIssue(
                    self.file,
                    line,
                    path,
                    f"mappings and lists are nested more than {MAX_DEPTH} deep",
                )
            )
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, line, depth)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise YamlProblem(
                    PolicyIssue(self.file, line, path, f"tag {node.tag} is not allowed")
                )
            items = [
                self.convert(child, f"{path}[{i}]", depth + 1) for i, child in enumerate(node.value)
            ]
            return Located(items, self.file, line)
        return Located(self._scalar(node, path, line), self.file, line)

    def _mapping(self, node: yaml.MappingNode, path: str, line: int, depth: int) -> Located:
        if node.tag != "tag:yaml.org,2002:map":
            raise YamlProblem(PolicyIssue(self.file, line, path, f"tag {node.tag} is not allowed"))
        own = sum(1 for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge")
        try:
            self.loader.flatten_mapping(node)  # resolves `<<:` merge keys the way PyYAML does
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = mark.line + 1 if mark is not None else line
            raise YamlProblem(
                PolicyIssue(
                    self.file,
                    where,
                    path,
                    "a merge key (<<) takes an alias of a mapping or a list of them",
                )
            ) from None
        # flatten_mapping puts the merged pairs first; the mapping's own keys may override them.
        merged = len(node.value) - own
        from_merge: set[str] = set()
        result: dict[str, Located] = {}
        for index, (key_node, value_node) in enumerate(node.value):
            key_line = key_node.start_mark.line + 1
            key = (
                self._scalar(key_node, path, key_line)
                if isinstance(key_node, yaml.ScalarNode)
                else None
            )
            if not isinstance(key, str):
                raise YamlProblem(
                    PolicyIssue(self.file, key_line, path, f"keys must be strings, got {key!r}")
                )
            child = f"{path}.{key}" if path else key
            if index < merged:
                from_merge.add(key)
            elif key in from_merge:
                from_merge.discard(key)
                del result[key]
            if key in result and index >= merged:
                raise YamlProblem(
                    PolicyIssue(
                        self.file,
                        key_line,
                        child,
                        f"duplicate key (first given on line {result[key].line})",
                    )
                )
            value = self.convert(value_node, child, depth + 1)
            # Report the key's line: for a nested mapping the value starts on the next line.
            result[key] = Located(value.value, value.file, key_line)
        return Located(result, self.file, line)

    def _scalar(self, node: yaml.Node, path: str, line: int) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise YamlProblem(PolicyIssue(self.file, line, path, "expected a scalar"))
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            raise YamlProblem(
                PolicyIssue(self.file, line, path, f"invalid value: {reason}")
            ) from None
