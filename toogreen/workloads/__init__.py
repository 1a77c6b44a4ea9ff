"""Workloads that ship with the project: programs a node agent runs, which honour the checkpoint contract
(``docs/node-agent.md``). They import nothing of the system around them."""
