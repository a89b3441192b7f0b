"""ACD benchmark: pure routing policy throughput, and live CallPilot vs app_queue latency.

Run ``.venv/bin/python -m bench.acd`` from the repository root (see bench/README.md).
"""
