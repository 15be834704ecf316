"""Reliability probes (issue 15): hostile agents and hostile user code against a real kernel.

``probes.py`` holds the probes as plain functions (``probe_x(kernel) -> Figures``) used by the
tests here and by ``benchmarks/reliability_compare.py`` (ours beside upstream's runner).
"""
