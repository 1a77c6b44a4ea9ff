"""Fixtures of the interoperability tests: the Avro reference implementation (Java) as a command."""

from __future__ import annotations

import pytest

from tests.interop.java_tool import AvroJava, interop_jar


@pytest.fixture(scope="session")
def avro_java() -> AvroJava:
    return AvroJava(interop_jar())
