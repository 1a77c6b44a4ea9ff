"""The streams verifier in CI, bounded: 3 brokers, 3 workers, grid + telemetry + 150 workloads, a worker killed
with -9 every 20-30 s and a broker once (see ``streams_verifier`` for what it checks and prints).

It does not pass yet (see docs/kafka.md, "What it finds": decisions sent before their reservation is logged,
the sink's event order, windows counting a redelivered reading twice), so it is marked xfail, not strict, and only
for an AssertionError of the checks: the figures are printed either way (``pytest -s``) and written to
``verifier.json`` in its run directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.kafka_stack import needs_java
from tests.system.streams_verifier import Plan, verify

pytestmark = [pytest.mark.integration, needs_java]


@pytest.mark.timeout(480)
@pytest.mark.xfail(
    reason="issues 11/12: exactly-once effects under kill -9 not there yet (docs/kafka.md)",
    raises=AssertionError,
    strict=False,
)
def test_verifier_on_three_brokers_three_workers_under_kill_9(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    plan = Plan(workloads=150, submit_per_s=3.0, broker_kill_at_s=30.0, broker_down_s=10.0, drain_s=60.0)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        with capsys.disabled():
            print(line)

    checks = verify(tmp_path, plan, say)
    failed = [f"{c.name}: {c.figures}" for c in checks if not c.ok]
    assert not failed, "verifier failed:\n" + "\n".join(failed)
