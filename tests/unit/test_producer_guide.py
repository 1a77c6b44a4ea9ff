"""docs/producers.md says what the code does: its snippets are excerpts of code the suite runs, its fingerprints
are the codec's, its dead-letter reasons are the ones the codec and the validators give."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tests.builders import grid_reading
from toogreen import PROJECT_ROOT
from toogreen.codec import DecodeError, codec_for, decode, encode
from toogreen.domain.lifecycle import IllegalTransition, WorkloadState, next_state
from toogreen.domain.validation import validate_grid_reading, validate_registration, validate_telemetry
from toogreen.topics import ALL_TOPICS

GUIDE = (PROJECT_ROOT / "docs" / "producers.md").read_text()
PYTHON_SOURCE = PROJECT_ROOT / "tests" / "interop" / "outside_node.py"
JAVA_SOURCE = PROJECT_ROOT / "tests" / "interop" / "java" / "src" / "main" / "java" / "toogreen" / "interop"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE, flags=re.DOTALL)


def is_excerpt(snippet: str, source: Path) -> bool:
    """Whether ``snippet`` is a run of whole lines of ``source``, dedented as one."""
    want, lines = textwrap.dedent(snippet).rstrip("\n"), source.read_text().splitlines()
    size = len(want.splitlines())
    return any(textwrap.dedent("\n".join(lines[i : i + size])) == want for i in range(len(lines) - size + 1))


@pytest.mark.parametrize("snippet", blocks("python"))
def test_python_snippets_are_excerpts_of_the_outside_node_the_suite_runs(snippet: str):
    assert is_excerpt(snippet, PYTHON_SOURCE), f"not in {PYTHON_SOURCE.name}:\n{snippet}"


@pytest.mark.parametrize("snippet", blocks("java"))
def test_java_snippets_are_excerpts_of_the_java_node_the_suite_runs(snippet: str):
    assert is_excerpt(snippet, JAVA_SOURCE / "OutsideNode.java"), f"not in OutsideNode.java:\n{snippet}"


def test_there_are_snippets_of_both():
    assert len(blocks("python")) >= 4 and len(blocks("java")) >= 2


def test_the_topic_table_has_every_topic_with_the_codec_s_fingerprint():
    for spec in ALL_TOPICS:
        row = f"| `{spec.name}` | `{spec.key_field}` | `schemas/{spec.schema_file}` | "
        assert f"{row}`{codec_for(spec.name).fingerprint.hex()}` |" in GUIDE, f"{spec.name}: run make interop-vectors"


def _decode_reason(topic: str, data: bytes | None) -> str:
    with pytest.raises(DecodeError) as caught:
        decode(topic, data)
    return str(caught.value)


def _illegal(current: WorkloadState, event: str) -> str:
    with pytest.raises(IllegalTransition) as caught:
        next_state(current, event)
    return str(caught.value)


def test_the_dead_letter_reasons_are_the_ones_given():
    good = encode("grid.readings", grid_reading())
    telemetry = {"sm_util_pct": 10.0, "power_w": 100.0, "mem_used_mb": 1, "mem_total_mb": 2}
    registration = {"zone": "FR", "lat": 0.0, "lng": 0.0, "pue": 1.0, "vram_mb": 1}
    documented = {
        "grid.readings: empty message (tombstone)": _decode_reason("grid.readings", None),
        "grid.readings: not Avro single-object encoding (expected magic C301, got '": _decode_reason(
            "grid.readings", b'{"zone": "FR"}'
        ),
        "unknown writer schema fingerprint ": _decode_reason("grid.readings", good[:2] + good[2:10][::-1] + good[10:]),
        "'s parsing canonical form, little endian)": _decode_reason("grid.readings", good[:2] + bytes(8) + good[10:]),
        "corrupt Avro body: ": _decode_reason("grid.readings", good[:12]),
        " trailing bytes after record": _decode_reason("grid.readings", good + b"\x00"),
        "unknown zone 'XX': known zones are BE, DE, ": "; ".join(validate_grid_reading(grid_reading(zone="XX"))),
        "negative power_w -5.0": "; ".join(validate_telemetry({**telemetry, "power_w": -5.0})),
        "sm_util_pct 140.0 outside 0-100": "; ".join(validate_telemetry({**telemetry, "sm_util_pct": 140.0})),
        "pue 0.9 below 1.0": "; ".join(validate_registration({**registration, "pue": 0.9})),
        "vram_mb must be positive": "; ".join(validate_registration({**registration, "vram_mb": 0})),
        " is not a finite number (nan)": "; ".join(validate_telemetry({**telemetry, "power_w": float("nan")})),
        "event 'started' is illegal in state 'submitted' (legal in: routed)": _illegal(WorkloadState.SUBMITTED,
                                                                                       "started"),
    }  # fmt: skip
    for phrase, actual in documented.items():
        assert phrase in actual, f"the code says {actual!r}"
        shown = phrase.replace("grid.readings: ", "<topic>: ")
        assert shown in GUIDE, f"docs/producers.md does not show {shown!r}"
