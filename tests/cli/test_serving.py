"""`twotower serve` as a process: serves the pushed model, answers `twotower query`, drains and exits on SIGTERM."""

import http.client
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import List, Tuple

import pytest

from twotower import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_serve_then_query_then_sigterm(serving_dir, capsys):
    command = [sys.executable, "-m", "twotower.cli", "serve", "--serving-dir", serving_dir, "--host", "127.0.0.1"]
    command += ["--port", "0", "--poll-seconds", "0", "--max-batch-size", "8", "--tf-threads", "1"]
    server = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()  # printed once the port is open and the versions are loaded
        match = re.search(r"\(versions: twotower/1\) on http://127\.0\.0\.1:(\d+)$", line.strip())
        assert match, line
        url = f"http://127.0.0.1:{match[1]}"
        assert cli.main(["query", "--url", url, "--customer-id", "nobody", "-k", "4"]) == 0
        out = capsys.readouterr().out
        assert f"top-4 for customer nobody from {url}:" in out and "   4. " in out
        scann = cli.main(["query", "--url", url, "--customer-id", "nobody", "-k", "4", "--signature", "scann"])
        has_index = os.path.isdir(os.path.join(serving_dir, "twotower", "1", "assets.extra", "scann"))
        assert scann == (0 if has_index else 2)  # the pushed ScaNN index, served by the `scann` signature
        assert "   4. " in capsys.readouterr().out or not has_index
        assert cli.main(["query", "--url", url, "--customer-id", "x", "--signature", "nope"]) == 2
        assert "no signature 'nope'" in capsys.readouterr().err
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0


def test_bad_flags_exit_2(tmp_path, capsys):
    assert cli.main(["serve", "--serving-dir", str(tmp_path), "--label", "stable"]) == 2
    assert "--label expects NAME=VALUE, got 'stable'" in capsys.readouterr().err
    assert cli.main(["query", "--url", "http://127.0.0.1:9", "--customer-id", "x"]) == 2
    assert "cannot reach the server" in capsys.readouterr().err


def test_serve_help_lists_the_limits_timeouts_and_drain(capsys):
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--max-rows", "--read-timeout", "--idle-timeout", "--max-connections", "--drain-seconds"):
        assert flag in text
    assert "--follow-symlinks" in text and "(default 1000)" in text


def _serve(serving_dir: str, log_path: str, *flags: str, preexec_fn=None) -> Tuple[subprocess.Popen, int]:
    command = [sys.executable, "-m", "twotower.cli", "serve", "--serving-dir", serving_dir, "--host", "127.0.0.1"]
    command += ["--port", "0", "--poll-seconds", "0", "--tf-threads", "1", *flags]
    log = open(log_path, "w")
    server = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True, preexec_fn=preexec_fn)
    log.close()
    line = server.stdout.readline()
    match = re.search(r"on http://127\.0\.0\.1:(\d+)$", line.strip())
    assert match, (line, open(log_path).read()[-2000:])
    return server, int(match[1])


def _read_answer(sock: socket.socket) -> Tuple[str, int]:
    """Reads one HTTP answer: ("complete", status), ("cut", bytes read) or ("none", 0) if none began."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return ("cut", len(data)) if data else ("none", 0)
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: (\d+)", head)[1])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return "cut", len(head) + len(body)
        body += chunk
    return "complete", int(head.split(b" ", 2)[1])


def _client(port: int, request: bytes, stop: threading.Event, out: List[Tuple[str, int]]) -> None:
    sock = None
    while True:
        try:
            if sock is None:
                if stop.is_set():
                    return
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(request)
            outcome = _read_answer(sock)
        except ConnectionRefusedError:
            out.append(("refused", 0))
            return
        except (ConnectionResetError, BrokenPipeError):
            outcome = ("none", 0)  # closed before this request was read
        out.append(outcome)
        if outcome[0] != "complete":
            sock.close()
            sock = None


def _slow_reader(port: int, request: bytes, reading: threading.Event, out: List[Tuple[str, int]]) -> None:
    """Sends one request with a large answer and reads that answer slowly, 16 KiB every 10 ms."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.sendall(request)
        data = sock.recv(16384)
        reading.set()
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: (\d+)", head)[1])
        while len(body) < length:
            time.sleep(0.01)
            chunk = sock.recv(16384)
            if not chunk:
                out.append(("cut", len(body)))
                return
            body += chunk
        out.append(("complete", int(head.split(b" ", 2)[1])))


def _predict(rows: list) -> bytes:
    body = json.dumps({"instances": rows}).encode()
    return (
        f"POST /v1/models/twotower:predict HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )


@pytest.mark.slow
def test_sigterm_during_an_8_client_load_loses_no_accepted_request(serving_dir, customers, tmp_path):
    log_path = str(tmp_path / "serve.log")
    server, port = _serve(serving_dir, log_path, "--drain-seconds", "20")
    stop, reading, outcomes = threading.Event(), threading.Event(), [[] for _ in range(9)]
    clients = [threading.Thread(target=_client, args=(port, _predict(customers[:16]), stop, o)) for o in outcomes[:8]]
    big = _predict(customers * 10)  # 500 rows: a ~2.5 MB answer, still being read when the signal comes
    clients.append(threading.Thread(target=_slow_reader, args=(port, big, reading, outcomes[8])))
    try:
        for c in clients[:8]:
            c.start()
        time.sleep(2.0)
        clients[8].start()
        assert reading.wait(timeout=30)
        server.send_signal(signal.SIGTERM)
        stop.set()  # clients stop opening connections; open ones keep sending until the server closes them
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        stop.set()
        for c in clients:
            c.join(timeout=60)
    every = [o for client in outcomes for o in client]
    complete = [status for kind, status in every if kind == "complete"]
    assert len(complete) > 50 and set(complete) == {200}, set(complete)
    assert outcomes[8] == [("complete", 200)]  # the answer being written at the signal was written in full
    assert not [o for o in every if o[0] == "cut"]  # no answer cut short
    drained = re.search(r"(\d+) requests received and (\d+) answered in all", open(log_path).read())
    assert drained, open(log_path).read()[-2000:]
    assert int(drained[1]) == int(drained[2]) == len(complete)  # every request read was answered, in full


@pytest.mark.slow
def test_at_a_low_open_file_limit_idle_sockets_neither_starve_requests_nor_flood_the_log(serving_dir, tmp_path):
    log_path = str(tmp_path / "serve.log")
    low = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))  # noqa: E731
    server, port = _serve(serving_dir, log_path, "--max-connections", "4096", preexec_fn=low)
    idle = []
    try:
        for _ in range(300):  # the kernel queues them all; the server holds at most ~60
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        for _ in range(5):  # normal requests are answered meanwhile
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/v1/models/twotower")
            assert conn.getresponse().status == 200
            conn.close()
        time.sleep(2.0)
    finally:
        for s in idle:
            s.close()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    log = open(log_path).read()
    assert "--max-connections 4096 lowered to" in log
    assert log.count("\n") < 100 and len(log) < 50_000, log[-3000:]  # was 384,262 lines (31 MB) in ~25 s
