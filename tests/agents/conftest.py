"""Agent tests see each event's effects at once: every event is a run of its own (no coalescing delay)."""

import os

os.environ.setdefault("TOOGREEN_WORKER__COALESCE_MAX_DELAY_MS", "0")
os.environ.setdefault("TOOGREEN_WORKER__ROUTER_COALESCE_MAX_DELAY_MS", "0")
