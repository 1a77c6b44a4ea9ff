"""Receipts as signed, verification against the served public key, and the CLI's offline verification."""

import json

from typer.testing import CliRunner

from toogreen.app.cli import app as cli


def test_receipts_round_trip_verify_and_tamper(client, settled):
    receipt, _billing = settled
    served = client.get(f"/api/v1/receipts/{receipt['receipt_id']}").json()
    assert served == receipt
    assert client.post("/api/v1/receipts/verify", json=served).json() == {"valid": True, "failed_check": None}
    forged = {**served, "gco2_actual": served["gco2_actual"] / 2}
    assert client.post("/api/v1/receipts/verify", json=forged).json()["valid"] is False
    assert client.get("/api/v1/public-key").json()["hex"] == receipt["public_key"]
    assert client.get("/api/v1/receipts/nope").status_code == 404


def test_cli_verifies_with_only_the_public_key(settled, tmp_path):
    receipt = settled[0]
    good, bad, pub = tmp_path / "r.json", tmp_path / "bad.json", tmp_path / "pub.pem"
    good.write_text(json.dumps(receipt))
    bad.write_text(json.dumps({**receipt, "kwh": receipt["kwh"] + 1}))
    assert CliRunner().invoke(cli, ["receipt", "public-key"]).exit_code == 0
    pub.write_text(CliRunner().invoke(cli, ["receipt", "public-key"]).output)
    ok = CliRunner().invoke(cli, ["receipt", "verify", str(good), "--public-key", str(pub)])
    assert ok.exit_code == 0 and ok.output.startswith("valid")
    no = CliRunner().invoke(cli, ["receipt", "verify", str(bad), "--public-key", str(pub)])
    assert no.exit_code == 1 and "signature does not match" in no.output
