"""Helpers of ``bench/gateway_overhead.py``: the fake upstream, the reference relay, the load
generator (each run as its own process) and the orchestrator's server handling and report."""
