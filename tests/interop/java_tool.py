"""The Java side of the interoperability tests: Apache Avro's reference implementation, run as a command.

``tests/interop/java`` is a Maven project (Avro and kafka-clients from Maven Central); ``make interop-java`` builds
its jar, and :func:`interop_jar` builds it here too when it is missing or older than its sources, so the tests
also run from a bare ``pytest``. Without ``java`` and ``mvn`` on the PATH the Java tests are skipped with a reason
(CI has both: ``make test`` builds the jar first).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

JAVA_DIR = Path(__file__).resolve().parent / "java"
JAR = JAVA_DIR / "target" / "avro-interop.jar"
BUILD_TIMEOUT_S = 600  # the first build downloads Avro and its plugins from Maven Central


def _sources() -> list[Path]:
    return [JAVA_DIR / "pom.xml", *sorted((JAVA_DIR / "src").rglob("*.java"))]


def jar_is_stale() -> bool:
    return not JAR.exists() or JAR.stat().st_mtime < max(p.stat().st_mtime for p in _sources())


def interop_jar() -> Path:
    """The built jar (built now if needed), or a skip saying what is missing."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the Avro reference checks need {' and '.join(missing)} on the PATH (CI has them)")
    if jar_is_stale():
        mvn = ["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(JAVA_DIR / "pom.xml"), "package"]
        subprocess.run(mvn, check=True, timeout=BUILD_TIMEOUT_S)
        JAR.touch()
    return JAR


@dataclass(frozen=True)
class AvroJava:
    """``java -jar avro-interop.jar``: the commands of ``toogreen.interop.AvroInterop``."""

    jar: Path

    def run(self, *args: str | Path, check: bool = True, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["java", "-jar", str(self.jar), *map(str, args)], capture_output=True, text=True, timeout=timeout_s
        )
        if check and result.returncode != 0:
            raise AssertionError(f"java {args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def java(self, main_class: str, *args: str) -> subprocess.Popen[bytes]:
        """Another class of the jar, started as a process (its classpath is the jar's)."""
        classpath = f"{self.jar}:{self.jar.parent / 'lib'}/*"
        return subprocess.Popen(["java", "-cp", classpath, main_class, *args])


def lines_of(path: Path) -> list[str]:
    """The lines of a file Java wrote (split on newlines only: a JSON string may hold U+0085 or U+2028)."""
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
