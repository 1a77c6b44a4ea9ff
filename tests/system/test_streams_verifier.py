"""The streams verifier in CI, bounded: 3 brokers, 3 workers, grid + telemetry + 150 workloads, a worker killed
with -9 every 20-30 s and a broker once (see ``streams_verifier`` for what it checks and prints).

It does not pass yet (see docs/kafka.md, "Exactly once under kill -9": the first submissions of a run and a few
readings around a handover never reach the agents), so it is marked xfail, not strict, and only for an
AssertionError of the checks: the figures are printed either way (``pytest -s``) and written to ``verifier.json`` in
its run directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.kafka_stack import needs_java
from tests.system.streams_verifier import Plan, verify

pytestmark = [pytest.mark.integration, needs_java]


@pytest.mark.timeout(480)
@pytest.mark.xfail(
    reason="issue 11: records lost around a handover under kill -9 (docs/kafka.md, exactly once under kill -9)",
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
