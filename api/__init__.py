"""The query API (FastAPI) over the DuckDB file."""
