"""The public API: every package's ``__all__`` is accurate and complete (as httpx checks it)."""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType

import pytest

import asr_resilience

PACKAGES = [
    "asr_resilience",
    "asr_resilience.policy",
    "asr_resilience.limits",
    "asr_resilience.tokens",
    "asr_resilience.observe",
    "asr_resilience.retry",
    "asr_resilience.clients",
    "asr_resilience.protocol",
    "asr_resilience.sdk",
]


def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


def _defined_in_package(obj: object) -> bool:
    """A class or function whose home is asr_resilience (not a re-exported third-party one)."""
    if inspect.ismodule(obj) or not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return False
    home = getattr(obj, "__module__", "") or ""
    return home == "asr_resilience" or home.startswith("asr_resilience.")


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist(name: str) -> None:
    """Every name listed in ``__all__`` is an attribute of the package."""
    module = _module(name)
    missing = [member for member in module.__all__ if not hasattr(module, member)]
    assert missing == []


@pytest.mark.parametrize("name", PACKAGES)
def test_all_has_no_duplicates(name: str) -> None:
    """No name is listed twice in ``__all__``."""
    exported = list(_module(name).__all__)
    assert len(exported) == len(set(exported))


def test_top_level_all_is_sorted() -> None:
    """``asr_resilience.__all__`` is sorted."""
    assert asr_resilience.__all__ == sorted(asr_resilience.__all__)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_public_members_are_exported(name: str) -> None:
    """Every public class or function of the package that it defines is listed in ``__all__``."""
    module = _module(name)
    public = {
        member
        for member in dir(module)
        if not member.startswith("_") and _defined_in_package(getattr(module, member))
    }
    assert public - set(module.__all__) == set()


def test_version_is_exported() -> None:
    """``__version__`` is exported and is a string."""
    assert "__version__" in asr_resilience.__all__
    assert isinstance(asr_resilience.__version__, str)


def test_submodules_named_in_the_docs_are_attributes() -> None:
    """`ar.testing.no_wait()` and `ar.observe.add_hook` work after a plain `import`."""
    import asr_resilience as ar

    assert callable(ar.testing.no_wait)
    assert callable(ar.observe.add_hook)


RAISING_PACKAGES = [*PACKAGES, "asr_resilience.fleet"]


@pytest.mark.parametrize("name", RAISING_PACKAGES)
def test_every_exported_exception_derives_from_the_root(name: str) -> None:
    """Every exception a package exports is an ``AsrResilienceError`` (one root to catch)."""
    module = _module(name)
    strays = [
        member
        for member in module.__all__
        if inspect.isclass(obj := getattr(module, member))
        and issubclass(obj, BaseException)
        and not issubclass(obj, asr_resilience.AsrResilienceError)
    ]
    assert strays == []


TOP_LEVEL = {
    # calls and policies
    "resilient", "retrying", "Attempt", "Policy", "load_policy", "Failure", "catalog",
    "register_extractor", "unregister_extractor",
    # tokens and the fleet
    "Token", "TokenManager", "StaticToken", "AliyunTokenProvider", "RedisTokenCache",
    "FleetLimiter",
    # clients
    "Recognizer", "Transcriber", "RestRecognizer", "SdkRecognizer", "SdkTranscriber",
    # the errors a caller catches
    "AsrResilienceError", "ResilienceError", "NlsError", "TransportError", "ProtocolError",
    "PolicyError", "FixClientError", "FailFastError", "RetryExhaustedError",
    "DeadlineExceededError", "RetryBudgetExhaustedError", "CircuitOpenError", "TokenRefreshError",
    # modules and version
    "testing", "observe", "__version__",
}  # fmt: skip


def test_top_level_is_the_agreed_small_api() -> None:
    """The top level exports exactly the agreed names (adding one is a deliberate change)."""
    assert set(asr_resilience.__all__) == TOP_LEVEL
    assert len(TOP_LEVEL) <= 40


@pytest.mark.parametrize("name", sorted(asr_resilience._MOVED))
def test_moved_names_still_work_with_a_deprecation_warning(name: str) -> None:
    """A name the top level exported in 0.1 still resolves, warning where it lives now."""
    home = asr_resilience._MOVED[name]
    with pytest.warns(DeprecationWarning, match=f"asr_resilience.{home}.{name}"):
        value = getattr(asr_resilience, name)
    assert value is getattr(_module(f"asr_resilience.{home}"), name)


def test_implementation_modules_are_private() -> None:
    """Below the packages, every module is private (``_name.py``) but the public few."""
    import pkgutil

    public_modules = {"asr_resilience.testing", "asr_resilience.pytest_plugin"}
    strays = []
    for info in pkgutil.walk_packages(asr_resilience.__path__, "asr_resilience."):
        leaf = info.name.rsplit(".", 1)[-1]
        if info.ispkg or leaf.startswith("_") or info.name in public_modules:
            continue
        strays.append(info.name)
    assert strays == []
