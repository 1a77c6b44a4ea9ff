"""The offline evaluation: historical grids, a fleet and a workload trace through the routing policies."""
