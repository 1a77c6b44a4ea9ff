"""The CLI against a running API (uvicorn on a free port, in a thread): ``toogreen token create`` and
``toogreen submit``."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from toogreen.app.cli import app as cli


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


def test_submit_sends_one_idempotency_key_so_a_retry_is_the_same_workload(app, api_url):
    args = ["submit", "--name", "j", "--image", "i", "--vram-mb", "1000", "--expected-hours", "1",
            "--api-url", api_url, "--idempotency-key", "k-1"]  # fmt: skip
    first, again = CliRunner().invoke(cli, args), CliRunner().invoke(cli, args)
    assert first.exit_code == 0 and again.exit_code == 0, first.output
    assert json.loads(first.output)["workload_id"] == json.loads(again.output)["workload_id"]
    assert len(app.state.producer.sent) == 1
