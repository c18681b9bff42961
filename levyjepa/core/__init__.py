"""The registries and the small helpers every other package may use: errors, argument checks,
atomic writes, distributed reductions, progress bars, command-line help.

Imports nothing else of levyjepa.
"""
