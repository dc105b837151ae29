"""The command line against bad input: every refusal is one line, with the right exit status."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from asr_resilience import cli
from asr_resilience.cli._text import one_line
from asr_resilience.testing import no_wait

from .audio_fixtures import speech_like, wav

Main = Callable[[Sequence[str]], int]
ENV = (
    "NLS_TOKEN",
    "NLS_APPKEY",
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ASR_RESILIENCE_POLICY",
)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def main(monkeypatch: pytest.MonkeyPatch) -> Main:
    """``cli.main`` with the credential variables cleared."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return cli.main


@pytest.fixture
def speech(tmp_path: Path) -> Path:
    """A one-sentence WAV file."""
    path = tmp_path / "hello.wav"
    path.write_bytes(wav(speech_like([(800, 440)], gap_ms=300)))
    return path


def only_line(text: str) -> str:
    """The one line ``text`` holds; fails when it holds more or none."""
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize("command", ["recognize", "transcribe"])
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ws://[::1", "is not a valid URL (Invalid IPv6 URL)"),
        ("ws://127.0.0.1:99999/ws/v1", "is not a valid URL (Port out of range"),
        ("not a url", "is not a URL starting with ws:// or wss://"),
        ("http://127.0.0.1/ws/v1", "is not a URL starting with ws:// or wss://"),
        ("ws:///ws/v1", "is not a URL starting with ws:// or wss:// and a host"),
    ],
)
def test_bad_gateway_url_is_one_line_exit_2(
    main: Main,
    speech: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    url: str,
    reason: str,
) -> None:
    """A malformed --gateway exits 2 with one line naming the option, before any I/O."""
    status = main([command, str(speech), "--appkey", "k", "--token", "t", "--gateway", url])
    line = only_line(capsys.readouterr().err)
    assert status == 2
    assert f"--gateway: {url!r} {reason}" in line


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[::1", "is not a valid URL"),
        ("https://127.0.0.1:70000/", "Port out of range"),
        ("ftp://nls-meta.example/", "is not a URL starting with http:// or https://"),
    ],
)
def test_bad_meta_url_is_one_line_exit_2(
    main: Main,
    speech: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    reason: str,
) -> None:
    """A malformed --meta exits 2 with one line naming the option."""
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-hostile")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "hostile-secret-value")
    status = main(["recognize", str(speech), "--appkey", "k", "--meta", url])
    line = only_line(capsys.readouterr().err)
    assert status == 2
    assert line.startswith("asr-resilience recognize: error: --meta: ")
    assert reason in line


class _Html(http.server.BaseHTTPRequestHandler):
    """A web server's welcome page, whatever is asked."""

    PAGE = b"<!DOCTYPE html><html><body>" + b"<p>welcome to nginx</p>\n" * 300 + b"</body></html>"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.PAGE)))
        self.end_headers()
        self.wfile.write(self.PAGE)

    do_GET = do_POST

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def html_site() -> Iterator[str]:
    """An HTTP server answering every request with an HTML page; its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Html)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_html_page_from_meta_says_it_is_not_a_createtoken_service(
    main: Main,
    speech: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    html_site: str,
) -> None:
    """A --meta that serves a web page: one line saying so, no page dump, no secret."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-hostile")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "hostile-secret-value")
    with no_wait():
        status = main(["recognize", str(speech), "--appkey", "k", "--meta", html_site])
    err = capsys.readouterr().err
    line = only_line(err)
    assert status == 1
    assert "answered with an HTML page: it is not a CreateToken service" in line
    assert "welcome to nginx" not in line
    assert "hostile-secret-value" not in line
    assert "None" not in line


def test_one_line_names_objects_by_class_and_cuts_pages() -> None:
    """Messages lose object reprs and line breaks, and a page is cut to MAX_LINE characters."""
    text = "cannot use <ssl.SSLContext object at 0x7f3a2c1b9d10>\nfor\t<Foo object at 0xABC>"
    assert one_line(text) == "cannot use SSLContext for Foo"
    assert len(one_line("x" * 10_000)) == 600


# -- a missing extra: one line naming it (the CLI in a subprocess, the module made unimportable)

BLOCKER = """
import sys

class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _Blocked())
"""


def run_without(blocked: set[str], code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where the ``blocked`` modules cannot be imported."""
    program = BLOCKER.format(blocked=blocked) + code
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "ASR_RESILIENCE_LANG": "en"}
    return subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("blocked", "argv", "extra"),
    [
        ({"numpy"}, ["demo", "--no-fleet"], "simulator"),
        ({"aiohttp"}, ["simulate"], "simulator"),
        ({"matplotlib"}, ["demo", "--no-fleet", "--plot", "run.png"], "plot"),
    ],
)
def test_cli_without_an_extra_names_it_in_one_line(
    tmp_path: Path, blocked: set[str], argv: list[str], extra: str
) -> None:
    """`demo` without numpy or matplotlib, `simulate` without aiohttp: one line, the extra."""
    code = f"from asr_resilience.cli import main\nsys.exit(main({argv!r}))\n"
    done = run_without(blocked, code, tmp_path)
    line = only_line(done.stderr)
    assert done.returncode == 1, done.stderr
    assert line.startswith("asr-resilience: ")
    assert f"pip install 'asr-resilience[{extra}]'" in line
    assert not (tmp_path / "run.png").exists()


def test_redis_token_cache_without_redis_names_the_extra(tmp_path: Path) -> None:
    """Importing RedisTokenCache without redis-py raises one line naming the 'redis' extra."""
    code = (
        "try:\n"
        "    from asr_resilience.fleet import RedisTokenCache\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = run_without({"redis"}, code, tmp_path)
    line = only_line(done.stdout)
    assert line.startswith("MissingExtraError asr_resilience.fleet")
    assert "pip install 'asr-resilience[redis]'" in line


def test_gateway_fixture_without_aiohttp_names_the_extra(tmp_path: Path) -> None:
    """A test using the nls_gateway fixture without aiohttp fails with the 'simulator' extra."""
    (tmp_path / "conftest.py").write_text(BLOCKER.format(blocked={"aiohttp"}), encoding="utf-8")
    (tmp_path / "test_uses_gateway.py").write_text(
        "def test_gateway(nls_gateway):\n    pass\n", encoding="utf-8"
    )
    code = (
        "import pytest\n"
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'test_uses_gateway.py']))\n"
    )
    done = run_without(set(), code, tmp_path)
    assert done.returncode == 1, done.stdout
    assert (
        "MissingExtraError: the nls_gateway fixture needs aiohttp, which is not installed: "
        "pip install 'asr-resilience[simulator]'" in done.stdout
    )
