"""The node agent a GPU provider runs on each machine (``toogreen node-agent``).

- ``agent``: the loop: register on ``node.registry``, publish ``node.telemetry``, read this node's ``node.commands``,
  send ``workload.events``;
- ``supervisor``: the workloads: the router's protocol (start / checkpoint / stop / resume) on real processes;
- ``process``: one workload's directory, environment, signals and exit;
- ``store``: the checkpoint store (file:// today), with sizes and sha256;
- ``telemetry``: NVML on a real GPU, else the labelled replay of a real H100/H200 trace.

The contract for workload authors is in ``docs/node-agent.md``.
"""
