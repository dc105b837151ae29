"""The vendor's status codes as data: what a code (and its message) means and what to do.

The table lives in ``data/catalog.yaml`` (the vendor's error table verbatim, plus our general
entries for codes the vendor lists only with specific messages, codes seen beyond the table, and
one fallback entry per class of code). :func:`catalog` loads it once::

    entry = catalog().lookup(40000001, "Gateway:ACCESS_DENIED:The token 'abc' has expired!")
    entry.solution("en")
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib.resources import files
from typing import Any, Final, Literal, cast, get_args

import yaml

__all__ = [
    "Catalog",
    "CatalogEntry",
    "CodeClass",
    "Lang",
    "Text",
    "catalog",
    "code_class",
]

Lang = Literal["en", "zh"]
CodeClass = Literal["client", "server", "http_client", "http_server", "other"]
Table = Literal["general", "one_sentence", "extra", "class"]

_TABLES: Final = frozenset(get_args(Table))
_CLASSES: Final = frozenset(get_args(CodeClass))


@dataclass(frozen=True, slots=True)
class Text:
    """A text in both languages of the catalog."""

    zh: str
    en: str

    def __call__(self, lang: Lang) -> str:
        if lang == "zh":
            return self.zh
        if lang == "en":
            return self.en
        raise ValueError(f"unknown language {lang!r}: expected 'en' or 'zh'")


def code_class(code: int) -> CodeClass:
    """8-digit 4xxxxxxx -> client, 5xxxxxxx -> server, 3-digit 4xx -> http_client,
    5xx -> http_server, anything else (incl. 20000000, 3-digit 1xx-3xx, other lengths) -> other."""
    if 40_000_000 <= code <= 49_999_999:
        return "client"
    if 50_000_000 <= code <= 59_999_999:
        return "server"
    if 400 <= code <= 499:
        return "http_client"
    if 500 <= code <= 599:
        return "http_server"
    return "other"


# Real messages drift from the seed in quoting and spacing (the seed itself lost spaces and mixes
# ‘ with '), so both sides are compared with quotes unified, whitespace gone and case folded.
_QUOTES: Final = str.maketrans(dict.fromkeys('‘’“”`´"', "'"))
_WHITESPACE: Final = re.compile(r"\s+")
# Wildcards in the seed text, as they look after normalizing. The placeholders 'xxx' and [xxx]
# stand for any text; the "(173)" of the vocabulary row is one real count, not a constant, so
# any parenthesized number stands for any other.
_WILDCARD: Final = re.compile(r"'xxx'|\[xxx\]|\(\d+\)")
_WILDCARD_PATTERN: Final = {"'xxx'": "'.*?'", "[xxx]": ".*"}
_PLACEHOLDER: Final = re.compile(r"'xxx'|\[xxx\]")
# "Gateway:TOKEN:" / "Meta:TOKEN:" / "TOKEN:": which service prefixes a text varies (the token
# messages of 40000001 come as both Gateway:ACCESS_DENIED and Meta:ACCESS_DENIED, and are listed
# with no prefix at all), so a seed prefix is not required of the observed message.
_PREFIX: Final = re.compile(r"^(?:[a-z]+:)?[a-z][a-z0-9_]*_[a-z0-9_]*:(?=.)")


def _normalize(text: str) -> str:
    return _WHITESPACE.sub("", text.translate(_QUOTES)).casefold()


def _has_placeholder(message: str) -> bool:
    return bool(_PLACEHOLDER.search(_normalize(message)))


@functools.cache
def _compile(message: str) -> re.Pattern[str]:
    text = _normalize(message)
    prefix = _PREFIX.match(text)
    if prefix is not None:
        text = text[prefix.end() :]
    parts: list[str] = []
    last = 0
    for hole in _WILDCARD.finditer(text):
        parts.append(re.escape(text[last : hole.start()]))
        parts.append(_WILDCARD_PATTERN.get(hole.group(), r"\(\d+\)"))
        last = hole.end()
    parts.append(re.escape(text[last:]))
    # Searched, not full-matched: real messages wrap the seed text in prefixes and suffixes.
    return re.compile("".join(parts), re.DOTALL)


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One catalog row: a code (and message), its cause and solution in both languages."""

    code: int | None
    message: str | None
    name: str | None
    cause: Text
    solution: Text
    table: Table
    from_seed: bool
    general: bool
    variants: tuple[str, ...] = ()
    code_class: CodeClass | None = None

    def matches(self, message: str) -> bool:
        """Whether an observed status message is this entry's: quotes, spacing and case aside,
        the seed text (its placeholders as wildcards, its service prefix optional) occurs in it."""
        if self.message is None:
            return False
        return _compile(self.message).search(_normalize(message)) is not None


class Catalog:
    """The loaded catalog, indexed for :meth:`lookup` on every failure."""

    def __init__(self, entries: tuple[CatalogEntry, ...]) -> None:
        self._entries = tuple(entry for entry in entries if entry.table != "class")
        self._seed = tuple(entry for entry in self._entries if entry.from_seed)
        classes: dict[CodeClass, CatalogEntry] = {}
        for entry in entries:
            if entry.code_class is not None:
                if entry.code_class in classes:
                    raise ValueError(f"catalog: class {entry.code_class!r} listed twice")
                classes[entry.code_class] = entry
        if missing := _CLASSES - classes.keys():
            raise ValueError(f"catalog: no class entry for {sorted(missing)}")
        self._classes = classes
        by_code: dict[int, list[CatalogEntry]] = {}
        for entry in self._entries:
            if entry.code is None:
                raise ValueError(f"catalog: only class entries may lack a code: {entry!r}")
            by_code.setdefault(entry.code, []).append(entry)
        self._by_code = {code: tuple(group) for code, group in by_code.items()}
        self._codes = tuple(sorted(self._by_code))
        self._general: dict[int, CatalogEntry] = {}
        self._matchers: dict[int, tuple[tuple[re.Pattern[str], CatalogEntry], ...]] = {}
        for code, group in self._by_code.items():
            generals = [entry for entry in group if entry.general]
            if len(generals) != 1:
                raise ValueError(f"catalog: code {code} has {len(generals)} general entries")
            self._general[code] = generals[0]
            with_message = [(entry.message, entry) for entry in group if entry.message is not None]
            # A placeholder row (e.g. 40010003's "[xxx]") matches what the specific rows of
            # its code match too, so the specific rows must get the first chance.
            with_message.sort(key=lambda pair: _has_placeholder(pair[0]))
            self._matchers[code] = tuple((_compile(text), entry) for text, entry in with_message)

    def lookup(self, code: int, message: str | None = None) -> CatalogEntry:
        """The entry for a code and message: matching message, else the code's general entry,
        else the entry of the code's class."""
        general = self._general.get(code)
        if general is None:
            return self._classes[code_class(code)]
        if message:
            normalized = _normalize(message)
            for pattern, entry in self._matchers[code]:
                if pattern.search(normalized) is not None:
                    return entry
        return general

    def entries(self) -> tuple[CatalogEntry, ...]:
        """All entries except the class entries, in file order."""
        return self._entries

    def seed_entries(self) -> tuple[CatalogEntry, ...]:
        """The rows of the vendor's table, in its order."""
        return self._seed

    def for_code(self, code: int) -> tuple[CatalogEntry, ...]:
        """The entries of one code, in file order (empty for an unknown code)."""
        return self._by_code.get(code, ())

    def codes(self) -> tuple[int, ...]:
        """The distinct codes the catalog knows, sorted."""
        return self._codes

    def class_entry(self, cls: CodeClass) -> CatalogEntry:
        """The fallback entry for a class of codes."""
        return self._classes[cls]


_KEYS: Final = frozenset(
    {"code", "message", "name", "table", "seed", "general", "class", "cause", "solution"}
)


def _text(raw: Any, where: str) -> Text:
    if not isinstance(raw, Mapping) or set(raw) != {"zh", "en"}:
        raise ValueError(f"{where}: expected a mapping with exactly zh and en")
    zh, en = raw["zh"], raw["en"]
    if not (isinstance(zh, str) and zh and isinstance(en, str) and en):
        raise ValueError(f"{where}: zh and en must be non-empty strings")
    return Text(zh=zh, en=en)


def _optional_str(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is None or (isinstance(value, str) and value):
        return value
    raise ValueError(f"{where}: {key} must be a non-empty string or null")


def _entry(raw: Any, index: int) -> CatalogEntry:
    where = f"catalog entry #{index + 1}"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected a mapping")
    if unknown := set(raw) - _KEYS:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    table = raw.get("table")
    if table not in _TABLES:
        raise ValueError(f"{where}: table must be one of {sorted(_TABLES)}")
    code = raw.get("code")
    cls = raw.get("class")
    if table == "class":
        if cls not in _CLASSES or code is not None:
            raise ValueError(f"{where}: a class entry needs class in {sorted(_CLASSES)}, no code")
    elif cls is not None or not isinstance(code, int) or isinstance(code, bool):
        raise ValueError(f"{where}: needs an integer code and no class")
    seed, general = raw.get("seed"), raw.get("general")
    if not isinstance(seed, bool) or not isinstance(general, bool):
        raise ValueError(f"{where}: seed and general must be booleans")
    return CatalogEntry(
        code=code,
        message=_optional_str(raw, "message", where),
        name=_optional_str(raw, "name", where),
        cause=_text(raw.get("cause"), f"{where}: cause"),
        solution=_text(raw.get("solution"), f"{where}: solution"),
        table=cast(Table, table),
        from_seed=seed,
        general=general,
        code_class=cls,
    )


def _with_variants(entries: list[CatalogEntry]) -> tuple[CatalogEntry, ...]:
    """Give each synthetic general entry the messages of its code's other entries."""
    messages: dict[int, list[str]] = {}
    for entry in entries:
        if entry.code is not None and entry.message is not None:
            messages.setdefault(entry.code, []).append(entry.message)
    result: list[CatalogEntry] = []
    for entry in entries:
        if entry.general and not entry.from_seed and entry.code is not None:
            others = tuple(m for m in messages.get(entry.code, ()) if m != entry.message)
            entry = replace(entry, variants=others)
        result.append(entry)
    return tuple(result)


def _load(text: str) -> Catalog:
    raw = yaml.safe_load(text)
    if not isinstance(raw, list):
        raise ValueError("catalog: expected a top-level list of entries")
    return Catalog(_with_variants([_entry(item, index) for index, item in enumerate(raw)]))


@functools.cache
def catalog() -> Catalog:
    """The catalog shipped with the package, loaded on first use."""
    resource = files("asr_resilience") / "data" / "catalog.yaml"
    return _load(resource.read_text(encoding="utf-8"))
