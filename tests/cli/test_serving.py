"""`twotower serve` as a process: serves the pushed model, answers `twotower query`, drains and exits on SIGTERM."""

import os
import re
import signal
import subprocess
import sys

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
