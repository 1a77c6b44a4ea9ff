"""The composition root: the ``toogreen`` command line and ``toogreen demo``.

The one place under ``toogreen/`` that may import ``streams``, ``sinks``, ``api`` and ``connectors``: it wires the
layers together and starts their processes.
"""
