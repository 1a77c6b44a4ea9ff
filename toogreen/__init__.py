"""Too Green To Go: shared domain package (settings, codec, pure domain logic, CLI)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = PROJECT_ROOT / "schemas"
