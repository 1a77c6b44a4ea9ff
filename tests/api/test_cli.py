"""The CLI against a running API (uvicorn on a free port, in a thread): ``toogreen token create`` and
``toogreen submit``."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import uvicorn
from typer.testing import CliRunner

from toogreen.app.cli import app as cli


@pytest.fixture
def api_url(app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_token_create_issues_a_token_through_the_api(app, api_url, anon):
    out = CliRunner().invoke(cli, ["token", "create", "--role", "gamer", "--subject", "camille", "--api-url", api_url])
    assert out.exit_code == 0, out.output
    issued = json.loads(out.output)
    assert issued["role"] == "gamer" and issued["subject"] == "camille"
    me = anon.get("/api/v1/me", headers={"Authorization": f"Bearer {issued['token']}"}).json()
    assert me == {"role": "gamer", "subject": "camille"}
    bad = CliRunner().invoke(cli, ["token", "create", "--role", "gamer", "--subject", "x", "--api-url", api_url,
                                   "--admin-token", "wrong"])  # fmt: skip
    assert bad.exit_code == 1 and "401" in bad.output
