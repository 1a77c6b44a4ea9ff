"""Too Green To Go: the shared package under every process.

The layers, bottom to top; each imports only from the layers below it:

1. ``toogreen.domain``: the pure logic (windows, scoring and tiers, pricing, carbon accounting, the workload state
   machine, the router, placement bookkeeping) and its value types (``toogreen.domain.views``). No Kafka, Faust,
   DuckDB or HTTP imports; no import circle inside it.
2. ``toogreen.settings``, ``toogreen.codec`` (the Avro wire format), ``toogreen.signing``, ``toogreen.topics``,
   ``toogreen.evaluation`` (the offline evaluation, on the same domain functions as the live agents).
3. ``toogreen.kafka``: Kafka plumbing (the embedded broker, topic set-up, the validating producer).
4. ``connectors/``, ``streams/``, ``sinks/``, ``api/``: the processes' own code. They import ``toogreen``; nothing
   in ``toogreen`` imports them, except
5. ``toogreen.app``: the composition root (the ``toogreen`` command and ``toogreen demo``), which wires them.

``tests/unit/test_layering.py`` holds the rule.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = PROJECT_ROOT / "schemas"
