"""What gateway/gunicorn_conf.py changes in gunicorn's writing of an answer."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from gunicorn import util
from gunicorn.config import Config
from gunicorn.http import wsgi

CONF = Path(__file__).resolve().parents[2] / "gateway" / "gunicorn_conf.py"


@pytest.fixture(scope="module")
def conf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gunicorn_conf_under_test", CONF)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # as gunicorn loads it: by path
    return module


class Socket:
    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sends.append(bytes(data))


def answer(write, headers: list[tuple[str, str]], body: list[bytes]) -> list[bytes]:
    """The sends of one answer written through `write`, as gunicorn's worker writes it."""
    sock = Socket()
    request = SimpleNamespace(version=(1, 1), method="POST", should_close=lambda: False)
    response = wsgi.Response(request, sock, Config())
    response.start_response("200 OK", headers)
    for chunk in body:
        write(response, chunk)
    response.close()
    return sock.sends


@pytest.fixture(autouse=True)
def same_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(util, "http_date", lambda *_: "Tue, 01 Dec 2026 12:00:00 GMT")


def test_an_answer_written_whole_goes_out_in_one_send_with_the_same_bytes(
    conf: ModuleType,
) -> None:
    headers = [("Content-Type", "application/json"), ("Content-Length", "11")]
    stock = answer(wsgi.Response.write, headers, [b'{"ok":true}'])
    ours = answer(conf._head_with_body(wsgi.Response.write), headers, [b'{"ok":true}'])
    assert len(stock) == 2  # gunicorn's own: the head, then the body
    assert ours == [b"".join(stock)]


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ([("Content-Type", "text/plain")], [b"no length"]),  # chunked
        ([("Content-Length", "6")], [b"two", b"par"]),  # not whole in one write
    ],
)
def test_other_answers_are_written_as_gunicorn_writes_them(
    conf: ModuleType, headers: list[tuple[str, str]], body: list[bytes]
) -> None:
    ours = answer(conf._head_with_body(wsgi.Response.write), headers, body)
    assert ours == answer(wsgi.Response.write, headers, body)
