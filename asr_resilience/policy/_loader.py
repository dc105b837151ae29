"""Load a policy: a file, a shipped policy's name, or the file ``ASR_RESILIENCE_POLICY`` names.

``extends:`` layers a file on another (a path relative to the file, else a shipped policy's
name). Mappings merge deeply, child over parent; the child's rules come first, and a child rule
with a parent rule's name replaces it.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .._errors import PolicyError, PolicyIssue
from ._located import Located, YamlProblem, load_located
from ._policy import Policy
from ._schema import build_policy

ENV_VAR = "ASR_RESILIENCE_POLICY"
DEFAULT_NAME = "default"
MAX_EXTENDS_DEPTH = 16
MAX_POLICY_BYTES = 256 * 1024
"""Size of one policy file; real policies are a few kilobytes, and PyYAML needs about 100 times
a document's size in memory (and seconds per megabyte) to parse it."""


def shipped_policies() -> tuple[str, ...]:
    """Names of the policies installed with the package (``default``, ``production``, ...)."""
    folder = resources.files("asr_resilience") / "policies"
    return tuple(
        sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))
    )


def shipped_policy_path(name: str) -> Path | None:
    """The file of a shipped policy, by name with or without ``.yaml``; None if there is none."""
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    if "/" in stem or "\\" in stem or stem not in shipped_policies():
        return None
    return Path(str(resources.files("asr_resilience") / "policies" / f"{stem}.yaml"))


def resolve_source(source: str | os.PathLike[str] | None) -> Path:
    """The file a policy source names; raises PolicyError when there is none."""
    if source is None:
        source = os.environ.get(ENV_VAR) or DEFAULT_NAME
    path = Path(source)
    if path.is_file():
        return path
    shipped = shipped_policy_path(str(source))
    if shipped is not None:
        return shipped
    hint = f"no such file; shipped policies are: {', '.join(shipped_policies())}"
    raise PolicyError([PolicyIssue(str(source), 0, "", hint)])


def load_policy(source: str | os.PathLike[str] | None = None) -> Policy:
    """Load and validate a policy; raise PolicyError with one line per mistake."""
    path = resolve_source(source)
    doc = _load_chain(path, display=_display(path, source), seen=())
    name = path.stem
    policy, issues = build_policy(doc, name, str(path))
    if issues or policy is None:
        raise PolicyError(issues)
    return policy


def check_policy(source: str | os.PathLike[str]) -> list[PolicyIssue]:
    """The issues of a policy file (empty when it is valid)."""
    try:
        load_policy(source)
    except PolicyError as exc:
        return list(exc.issues)
    return []


def _display(path: Path, source: str | os.PathLike[str] | None) -> str:
    """How to name the file in messages: as the user gave it, else the shipped name."""
    if source is not None and Path(source).is_file():
        return str(source)
    return f"policies/{path.name}"


def _load_chain(path: Path, display: str, seen: tuple[Path, ...]) -> Located:
    resolved = path.resolve()
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_POLICY_BYTES + 1)
        if len(raw) > MAX_POLICY_BYTES:
            limit = f"{MAX_POLICY_BYTES // 1024} KiB"
            raise PolicyError(
                [PolicyIssue(display, 0, "", f"the file is larger than {limit}: not a policy")]
            )
        text = raw.decode("utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PolicyError(
            [PolicyIssue(display, 0, "", f"cannot read the file: {reason}")]
        ) from None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise PolicyError(
            [PolicyIssue(display, line, "", f"the file is not UTF-8 (byte {exc.start})")]
        ) from None
    try:
        doc = load_located(text, display)
    except YamlProblem as problem:
        raise PolicyError([problem.issue]) from None
    if doc is None:
        raise PolicyError([PolicyIssue(display, 1, "", "the policy is empty")])
    if not isinstance(doc.value, dict):
        raise PolicyError(
            [PolicyIssue(display, doc.line, "", "a policy must be a mapping (key: value lines)")]
        )
    items: dict[str, Located] = doc.value
    version = items.get("version")
    if version is None:
        raise PolicyError([PolicyIssue(display, doc.line, "version", "is required (version: 1)")])
    if version.value != 1 or isinstance(version.value, bool):
        raise PolicyError(
            [version.issue("version", f"{version.value!r} is not supported; only 1 exists")]
        )
    parent_loc = items.get("extends")
    if parent_loc is None:
        return doc
    parent_path = _resolve_extends(parent_loc, path)
    if parent_path.resolve() in (*seen, resolved):
        chain = " -> ".join(p.name for p in (*seen, resolved, parent_path.resolve()))
        raise PolicyError([parent_loc.issue("extends", f"cyclic extends: {chain}")])
    if len(seen) >= MAX_EXTENDS_DEPTH:
        raise PolicyError([parent_loc.issue("extends", "extends chain is too deep")])
    parent_display = (
        str(parent_path) if parent_path.parent != _shipped_dir() else f"policies/{parent_path.name}"
    )
    parent = _load_chain(parent_path, parent_display, (*seen, resolved))
    merged = _merge(parent, doc)
    if "name" not in items:
        merged.value.pop("name", None)  # a child is named after its own file, not its parent
    return merged


def _shipped_dir() -> Path:
    return Path(str(resources.files("asr_resilience") / "policies"))


def _resolve_extends(loc: Located, path: Path) -> Path:
    value = loc.value
    if not isinstance(value, str) or not value:
        raise PolicyError([loc.issue("extends", f"expected a file name, got {value!r}")])
    candidate = path.parent / value
    if candidate.is_file():
        return candidate
    shipped = shipped_policy_path(value)
    if shipped is not None:
        return shipped
    raise PolicyError(
        [
            loc.issue(
                "extends",
                f"{value!r} is neither a file next to this one nor a shipped policy "
                f"({', '.join(shipped_policies())})",
            )
        ]
    )


def _merge(parent: Located, child: Located) -> Located:
    """Child over parent, deeply; rules: the child's first, a same-named parent rule replaced."""
    merged: dict[str, Located] = dict(parent.value)
    merged.pop("extends", None)
    for key, value in child.value.items():
        if key == "extends":
            continue
        old = merged.get(key)
        if key == "rules" and old is not None:
            merged[key] = _merge_rules(old, value)
        elif old is not None and isinstance(old.value, dict) and isinstance(value.value, dict):
            merged[key] = _merge(old, value)
        else:
            merged[key] = value
    return Located(merged, child.file, child.line)


def _merge_rules(parent: Located, child: Located) -> Located:
    if not isinstance(parent.value, list) or not isinstance(child.value, list):
        return child  # the validator reports the wrong type at the child's line
    names = {_rule_name(rule) for rule in child.value} - {None}
    kept = [rule for rule in parent.value if _rule_name(rule) not in names]
    return Located([*child.value, *kept], child.file, child.line)


def _rule_name(rule: Located) -> str | None:
    if isinstance(rule.value, dict):
        name = rule.value.get("name")
        if name is not None and isinstance(name.value, str):
            return name.value
    return None
