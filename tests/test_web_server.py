"""`m2aenet web` over real HTTP (web/server.py, commands/web.py): who may connect, the headers,
uploads too large, and the command's refusals before the model loads."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_api import random_model
from test_web_handlers import _encoded, _png8, deblurrer  # noqa: F401 - the fixture

from m2aenet import cli
from m2aenet.checkpoint import save_model
from m2aenet.errors import ConfigError
from m2aenet.web.handlers import MAX_UPLOAD_BYTES, DeblurService
from m2aenet.web.server import WebServer, check_host, is_loopback, make_server, page_address


@pytest.fixture
def server(deblurrer, tmp_path: Path) -> Iterator[WebServer]:  # noqa: F811
    service = DeblurService(deblurrer, tmp_path / "work", examples_dir=None)
    server = make_server(service, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _request(
    server: WebServer, method: str, target: str, body: bytes | None = None, host: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=60)
    headers = {"Host": host} if host else {}
    connection.request(method, target, body=body, headers=headers)
    response = connection.getresponse()
    result = response.status, dict(response.getheaders()), response.read()
    connection.close()
    return result


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    assert is_loopback(host)
    check_host(host, allow_remote=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.org", ""])
def test_other_hosts_need_allow_remote(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="--allow-remote"):
        check_host(host, allow_remote=False)
    check_host(host, allow_remote=True)


def test_the_page_and_a_photo_over_http(server: WebServer) -> None:
    assert page_address(server) == f"http://127.0.0.1:{server.server_port}/"
    status, headers, body = _request(server, "GET", "/")
    assert status == 200 and b"<title>" in body
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    status, _, body = _request(server, "POST", "/api/deblur?name=a.png", _encoded(_png8(0)))
    assert status == 200, body
    run = json.loads(body)
    status, headers, body = _request(server, "GET", run["files"]["restored"] + "?download=1")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert int(headers["Content-Length"]) == len(body) > 0
    assert headers["Content-Disposition"] == 'attachment; filename="a_deblurred.png"'


def test_requests_for_another_host_name_are_refused(server: WebServer) -> None:
    # A page on the internet whose DNS name resolves to 127.0.0.1 (DNS rebinding).
    status, _, body = _request(server, "GET", "/api/info", host="attacker.example:8765")
    assert status == 403 and "localhost" in json.loads(body)["error"]
    status, _, _ = _request(server, "GET", "/api/info", host=f"localhost:{server.server_port}")
    assert status == 200


def test_an_upload_over_the_limit_is_refused_before_it_is_read(server: WebServer) -> None:
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=30) as connection:
        connection.sendall(
            b"POST /api/deblur?name=big.png HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Content-Length: {MAX_UPLOAD_BYTES + 1}\r\n\r\n".encode()
        )
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and b"Connection: close" in head
    assert "m2aenet deblur" in json.loads(body)["error"]


def test_a_busy_port_is_one_line(server: WebServer) -> None:
    with pytest.raises(ConfigError, match=f"--port {server.server_port}: cannot listen"):
        make_server(server.service, "127.0.0.1", server.server_port)


def test_the_command_refuses_a_public_host_before_loading_a_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["web", "--host", "0.0.0.0", "--weights", "/nonexistent.safetensors"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("m2aenet web: error: --host 0.0.0.0: not a loopback address")
    assert "\n" not in error


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--threads", "0"], "--threads: must be >= 1"),
        (["--threshold", "1.5"], "--threshold: expected a number in (0, 1)"),
        (["--device", "gpu"], "--device: expected auto, cpu"),
        (["--port", "70000"], "--port: expected a port number 0..65535, got '70000'"),
        (["--port", "http"], "--port: expected a port number"),
    ],
)
def test_bad_options_are_refused_by_the_parser(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["web", *arguments])
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_the_command_serves_until_terminated_and_cleans_up(tmp_path: Path) -> None:
    weights = save_model(tmp_path / "w.safetensors", random_model())
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "M2AENET_NO_REEXEC": "1", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(cli.__file__).parents[1]), env.get("PYTHONPATH", "")]
    )
    command = [sys.executable, "-m", "m2aenet", "web", "--port", "0", "--device", "cpu"]
    process = subprocess.Popen(
        [*command, "--threads", "1", "--weights", str(weights), "--threshold", "0.4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"m2aenet web did not start: {process.communicate(timeout=60)[1]}")
        assert line.startswith("m2aenet web: serving on http://127.0.0.1:"), line
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("GET", "/api/info")
        info = json.loads(connection.getresponse().read())
        connection.close()
        assert info["threshold"] == 0.4 and info["device"] == "cpu"
        assert len(list(temp.iterdir())) == 1  # the server's work folder
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert err.strip().endswith("m2aenet web: stopped")
    assert not any(temp.iterdir())  # results are deleted with the server
