"""Tests for asr_resilience._catalog: the vendor's error table as package data."""

from __future__ import annotations

import dataclasses

import pytest

from asr_resilience._catalog import Catalog, CatalogEntry, CodeClass, Text, catalog, code_class

# The vendor's table, row by row in its order: (code, message, name, table). Embedded rather than
# read from the seed file so the test does not depend on where the seed lies.
SEED_ROWS: list[tuple[int, str | None, str | None, str]] = [
    (40000000, None, None, "general"),
    (40000001, "The token 'xxx' has expired", None, "general"),
    (40000001, "The token 'xxx' is invalid", None, "general"),
    (
        40000002,
        "Gateway:MESSAGE_INVALID:Can't process message in state'FAILED'!",
        "MESSAGE_INVALID",
        "general",
    ),
    (40000003, "PARAMETER_INVALID", "PARAMETER_INVALID", "general"),
    (40000003, "Failed to decode url params", None, "general"),
    (40000005, "Gateway:TOO_MANY_REQUESTS:Too many requests!", "TOO_MANY_REQUESTS", "general"),
    (40000009, "Invalid wav header!", None, "general"),
    (40000009, "Too large wav header!", None, "general"),
    (
        40000010,
        "Gateway:FREE_TRIAL_EXPIRED:The free trial has expired!",
        "FREE_TRIAL_EXPIRED",
        "general",
    ),
    (
        40010001,
        "Gateway:NAMESPACE_NOT_FOUND:RESTful url path illegal",
        "NAMESPACE_NOT_FOUND",
        "general",
    ),
    (40010003, "Gateway:DIRECTIVE_INVALID:[xxx]", "DIRECTIVE_INVALID", "general"),
    (
        40010004,
        "Gateway:CLIENT_DISCONNECT:Client disconnected before task finished!",
        "CLIENT_DISCONNECT",
        "general",
    ),
    (
        40010005,
        "Gateway:TASK_STATE_ERROR:Got stop directive while task is stopping!",
        "TASK_STATE_ERROR",
        "general",
    ),
    (40020105, "Meta:APPKEY_NOT_EXIST:Appkey not exist!", "APPKEY_NOT_EXIST", "general"),
    (
        40020106,
        "Meta:APPKEY_UID_MISMATCH:Appkey and user mismatch!",
        "APPKEY_UID_MISMATCH",
        "general",
    ),
    (403, "Forbidden", None, "general"),
    (41000003, "MetaInfo doesn't have end point info", None, "general"),
    (41010101, "UNSUPPORTED_SAMPLE_RATE", "UNSUPPORTED_SAMPLE_RATE", "general"),
    (
        41040201,
        "Realtime:GET_CLIENT_DATA_TIMEOUT:Client data does not send continuously!",
        "GET_CLIENT_DATA_TIMEOUT",
        "general",
    ),
    (50000000, "GRPC_ERROR:Grpc error!", "GRPC_ERROR", "general"),
    (50000001, "GRPC_ERROR:Grpc error!", "GRPC_ERROR", "general"),
    (52010001, "GRPC_ERROR:Grpc error!", "GRPC_ERROR", "general"),
    (40000000, "Gateway:CLIENT_ERROR:Empty audio data!", "CLIENT_ERROR", "one_sentence"),
    (
        40000004,
        "Gateway:IDLE_TIMEOUT:Websocket session is idle for too long time",
        "IDLE_TIMEOUT",
        "one_sentence",
    ),
    (
        40010002,
        "Gateway:DIRECTIVE_NOT_SUPPORTED:"
        "Directive'SpeechRecognizer.EnhanceRecognition'isnotsupported!",
        "DIRECTIVE_NOT_SUPPORTED",
        "one_sentence",
    ),
    (
        40010003,
        "Gateway:DIRECTIVE_INVALID:Too many items for ‘vocabulary'!(173)",
        "DIRECTIVE_INVALID",
        "one_sentence",
    ),
    (40270002, "NO_VALID_AUDIO_ERROR", "NO_VALID_AUDIO_ERROR", "one_sentence"),
    (41010104, "TOO_LONG_SPEECH", "TOO_LONG_SPEECH", "one_sentence"),
    (41010105, "SILENT_SPEECH", "SILENT_SPEECH", "one_sentence"),
]

# Seed text spot checks, chosen where copying is easy to get wrong: the two-paragraph solutions,
# the stray space after a full-width comma, and the solution column that restates a cause.
SEED_TEXTS: list[tuple[int, str | None, str, str]] = [
    (
        40000005,
        "Gateway:TOO_MANY_REQUESTS:Too many requests!",
        "并发请求过多。",
        "如果是试用版调用，建议您升级为商用版本以增大并发。\n"
        "如果已是商用版，可购买并发资源包，扩充您的并发额度。",
    ),
    (
        40010001,
        "Gateway:NAMESPACE_NOT_FOUND:RESTful url path illegal",
        "不支持的接口或参数。",
        "请检查调用时传递的参数内容是否和官网文档要求的一致，并结合错误信息对比排查，"
        "设置为正确的参数。\n比如您是否通过curl命令执行RESTful接口请求， 拼接的URL是否合法。",
    ),
    (
        40000004,
        "Gateway:IDLE_TIMEOUT:Websocket session is idle for too long time",
        "请求建立链接后，长时间没有发送任何数据，超过10s后服务端会返回此错误信息。",
        "请在建立链接后和服务端保持交互，比如持续发送语音流，"
        "您可以在采集音频的同时进行发送， 发送结束后及时关闭链接。",
    ),
    (
        40000001,
        "The token 'xxx' has expired",
        "用户使用了不合理的参数或者调用逻辑。通用客户端错误码，"
        "通常是涉及Token相关的不正确使用，例如Token过期或者非法。",
        "请参考官网文档示例代码进行对比测试验证。",
    ),
    (
        40000000,
        None,
        "用户使用了不合理的参数或者调用逻辑。",
        "请参考官网文档示例代码进行对比测试验证。",
    ),
    (40270002, "NO_VALID_AUDIO_ERROR", "无效的音频。", "从音频中没有识别出有效文本。"),
    (41010105, "SILENT_SPEECH", "纯静音数据或噪音数据，导致无法检测出任何有效语音。", "无。"),
]

EXTRA_CODES = [40270001, 40270003, 41000002, 41010100, 41050002, 50020003]


@pytest.fixture(scope="module")
def cat() -> Catalog:
    """The packaged catalog."""
    return catalog()


def _seed_row(cat: Catalog, code: int, message: str | None) -> CatalogEntry:
    return next(e for e in cat.seed_entries() if e.code == code and e.message == message)


def test_seed_rows_are_the_vendor_table_in_order(cat: Catalog) -> None:
    """The 30 seed rows are exactly the vendor's (code, message, name, table) rows, in order."""
    rows = [(e.code, e.message, e.name, e.table) for e in cat.seed_entries()]
    assert rows == SEED_ROWS
    assert len(rows) == 30


def test_seed_rows_per_table(cat: Catalog) -> None:
    """The general table gives 23 rows and the one-sentence table 7."""
    tables = [e.table for e in cat.seed_entries()]
    assert tables.count("general") == 23
    assert tables.count("one_sentence") == 7


def test_seed_rows_have_texts_in_both_languages(cat: Catalog) -> None:
    """Every seed row has a non-empty zh and en cause and solution."""
    for entry in cat.seed_entries():
        assert entry.from_seed
        for text in (entry.cause, entry.solution):
            assert text.zh.strip(), entry
            assert text.en.strip(), entry


@pytest.mark.parametrize(("code", "message", "cause", "solution"), SEED_TEXTS)
def test_seed_texts_verbatim(
    cat: Catalog, code: int, message: str | None, cause: str, solution: str
) -> None:
    """The zh cause and solution are the seed's text verbatim, paragraphs joined by a newline."""
    entry = _seed_row(cat, code, message)
    assert entry.cause.zh == cause
    assert entry.solution.zh == solution


@pytest.mark.parametrize(
    ("code", "message"), [(code, message) for code, message, _, _ in SEED_ROWS if message]
)
def test_seed_message_looks_up_to_its_row(cat: Catalog, code: int, message: str) -> None:
    """Each seed row's own message finds that very row."""
    entry = cat.lookup(code, message)
    assert entry.from_seed
    assert (entry.code, entry.message) == (code, message)
    assert entry.matches(message)


@pytest.mark.parametrize(
    ("code", "observed", "seed_message"),
    [
        (
            40000001,
            "Gateway:ACCESS_DENIED:The token 'abc' has expired!",
            "The token 'xxx' has expired",
        ),
        (40000001, "Meta:ACCESS_DENIED:The token 'abc' is invalid!", "The token 'xxx' is invalid"),
        (
            40010002,
            "Directive 'SpeechRecognizer.EnhanceRecognition' is not supported!",
            "Gateway:DIRECTIVE_NOT_SUPPORTED:"
            "Directive'SpeechRecognizer.EnhanceRecognition'isnotsupported!",
        ),
        (
            40010002,
            "Gateway:DIRECTIVE_NOT_SUPPORTED:"
            "Directive 'SpeechRecognizer.EnhanceRecognition' is not supported!",
            "Gateway:DIRECTIVE_NOT_SUPPORTED:"
            "Directive'SpeechRecognizer.EnhanceRecognition'isnotsupported!",
        ),
        (
            40000002,
            "Gateway:MESSAGE_INVALID:Can't process message in state 'FAILED'!",
            "Gateway:MESSAGE_INVALID:Can't process message in state'FAILED'!",
        ),
        (
            40000002,
            "gateway:message_invalid:Can’t process message in state “FAILED”!",
            "Gateway:MESSAGE_INVALID:Can't process message in state'FAILED'!",
        ),
        (
            40010003,
            "Gateway:DIRECTIVE_INVALID:Too many items for 'vocabulary'!(201)",
            "Gateway:DIRECTIVE_INVALID:Too many items for ‘vocabulary'!(173)",
        ),
        (
            40010003,
            "Gateway:DIRECTIVE_INVALID:Unknown parameter 'foo'!",
            "Gateway:DIRECTIVE_INVALID:[xxx]",
        ),
        (41010104, "Gateway:TOO_LONG_SPEECH:Speech is too long!", "TOO_LONG_SPEECH"),
        (403, "403 Forbidden", "Forbidden"),
        (40000003, "Gateway:PARAMETER_INVALID:sample_rate", "PARAMETER_INVALID"),
    ],
)
def test_real_world_variant_looks_up_to_its_row(
    cat: Catalog, code: int, observed: str, seed_message: str
) -> None:
    """A real message (prefixes, spaces, other quotes, other numbers) finds the right seed row."""
    entry = cat.lookup(code, observed)
    assert (entry.code, entry.message) == (code, seed_message)


def test_vocabulary_row_does_not_match_other_directive_errors(cat: Catalog) -> None:
    """The vocabulary row matches only vocabulary messages; other 40010003 messages do not."""
    vocabulary = cat.lookup(40010003, "Too many items for 'vocabulary'!(5)")
    assert vocabulary.table == "one_sentence"
    assert not vocabulary.matches("Gateway:DIRECTIVE_INVALID:Invalid directive!")


@pytest.mark.parametrize("message", [None, "", "Bad things happened!"])
def test_unknown_message_of_40000009_gives_the_synthetic_general_entry(
    cat: Catalog, message: str | None
) -> None:
    """An unknown or missing 40000009 message gives the synthetic entry naming both variants."""
    entry = cat.lookup(40000009, message)
    assert entry.general
    assert not entry.from_seed
    assert entry.message is None
    assert entry.table == "general"
    assert entry.variants == ("Invalid wav header!", "Too large wav header!")
    for variant in entry.variants:
        assert variant in entry.cause.en
        assert variant in entry.cause.zh


@pytest.mark.parametrize(
    ("code", "variants"),
    [
        (40000001, ("The token 'xxx' has expired", "The token 'xxx' is invalid")),
        (40000003, ("PARAMETER_INVALID", "Failed to decode url params")),
    ],
)
def test_synthetic_general_entries(cat: Catalog, code: int, variants: tuple[str, ...]) -> None:
    """Codes listed only with several specific messages get a synthetic general entry."""
    entry = cat.lookup(code, "nothing like the seed")
    assert (entry.general, entry.from_seed, entry.table) == (True, False, "general")
    assert entry.variants == variants


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (40000000, None),
        (40000000, "Gateway:CLIENT_ERROR:Something else!"),
        (40010003, None),
        (40000005, "Meta:SOMETHING_ELSE:unexpected"),
    ],
)
def test_seed_row_is_general_entry(cat: Catalog, code: int, message: str | None) -> None:
    """40000000's default row, 40010003's [xxx] row and single-row codes answer for their code."""
    entry = cat.lookup(code, message)
    assert entry.from_seed
    assert entry.general
    assert entry.table == "general"


def test_each_known_code_has_one_general_entry(cat: Catalog) -> None:
    """Every code in the catalog has exactly one general entry."""
    for code in cat.codes():
        assert sum(e.general for e in cat.for_code(code)) == 1, code


@pytest.mark.parametrize("code", EXTRA_CODES)
def test_extra_codes(cat: Catalog, code: int) -> None:
    """The codes seen beyond the seed are known, with texts in both languages."""
    entry = cat.lookup(code, "anything")
    assert (entry.code, entry.table, entry.from_seed, entry.general) == (code, "extra", False, True)
    assert entry.cause("zh")
    assert entry.cause("en")
    assert entry.solution("zh")
    assert entry.solution("en")


def test_extra_code_names(cat: Catalog) -> None:
    """Extra codes carry the symbolic names the protocol notes give them."""
    names = {code: cat.lookup(code).name for code in EXTRA_CODES}
    assert names[41010100] == "UNSUPPORTED_FORMAT"
    assert names[41050002] == "FILE_DOWNLOAD_FAILED"
    assert names[50020003] == "ROUTE_GROUP_NOT_FOUND"


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (40999999, "client"),
        (41234567, "client"),
        (51234567, "server"),
        (404, "http_client"),
        (502, "http_server"),
        (20000000, "other"),
        (200, "other"),
        (0, "other"),
        (-1, "other"),
        (4000, "other"),
    ],
)
def test_unknown_code_gives_class_entry(cat: Catalog, code: int, cls: CodeClass) -> None:
    """A code the catalog does not know gives the entry of its class, message or not."""
    for message in (None, "Gateway:TOO_MANY_REQUESTS:Too many requests!"):
        entry = cat.lookup(code, message)
        assert entry is cat.class_entry(cls)
        assert (entry.code, entry.table, entry.code_class) == (None, "class", cls)


@pytest.mark.parametrize("cls", ["client", "server", "http_client", "http_server", "other"])
def test_class_entries(cat: Catalog, cls: CodeClass) -> None:
    """Each class has a synthetic entry with zh and en texts, kept out of entries()."""
    entry = cat.class_entry(cls)
    assert entry.code_class == cls
    assert not entry.from_seed
    assert entry.cause.zh
    assert entry.cause.en
    assert entry.solution.zh
    assert entry.solution.en
    assert entry not in cat.entries()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (20000000, "other"),
        (403, "http_client"),
        (503, "http_server"),
        (200, "other"),
        (39999999, "other"),
        (59999999, "server"),
        (40000000, "client"),
        (49999999, "client"),
        (50000000, "server"),
        (60000000, "other"),
        (400, "http_client"),
        (499, "http_client"),
        (599, "http_server"),
        (600, "other"),
        (399, "other"),
        (4000000, "other"),
        (400000000, "other"),
        (-403, "other"),
    ],
)
def test_code_class(code: int, expected: CodeClass) -> None:
    """code_class sorts codes by length and leading digit, everything else being other."""
    assert code_class(code) == expected


def test_codes_sorted_and_distinct(cat: Catalog) -> None:
    """codes() lists every known code once, sorted, including 403 and the extra codes."""
    codes = cat.codes()
    assert list(codes) == sorted(set(codes))
    assert {403, 40000000, 52010001, *EXTRA_CODES} <= set(codes)
    assert len(codes) == 31


def test_for_code(cat: Catalog) -> None:
    """for_code gives a code's entries in file order, and nothing for an unknown code."""
    messages = [e.message for e in cat.for_code(40000000)]
    assert messages == [None, "Gateway:CLIENT_ERROR:Empty audio data!"]
    assert len(cat.for_code(40000009)) == 3
    assert cat.for_code(12345) == ()


def test_entries_exclude_classes(cat: Catalog) -> None:
    """entries() holds the seed rows, the synthetic general entries and the extras, no classes."""
    entries = cat.entries()
    assert all(e.table != "class" for e in entries)
    assert len(entries) == 30 + 3 + len(EXTRA_CODES)


def test_matches_is_false_without_message(cat: Catalog) -> None:
    """An entry without a message matches nothing."""
    assert not cat.lookup(40000009).matches("Invalid wav header!")


def test_text_call_picks_the_language() -> None:
    """Text(lang) returns the text in that language."""
    text = Text(zh="无。", en="None.")
    assert text("zh") == "无。"
    assert text("en") == "None."


def test_entries_are_frozen(cat: Catalog) -> None:
    """Entries and their texts cannot be changed."""
    entry = cat.lookup(40000005)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.code = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.cause.zh = "x"  # type: ignore[misc]


def test_catalog_is_loaded_once() -> None:
    """catalog() returns the same object every time."""
    assert catalog() is catalog()
