"""The agentlease benchmark suite. Run it with ``python -m benchmarks.run``."""
