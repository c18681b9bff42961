"""Studies of several runs: statistics over seeds, the metrics read from runs, the study tables and
the seed experiments' documented results.

May import anything but the entry points.
"""
