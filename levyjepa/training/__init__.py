"""The training run: the loop, its set-up and end, the run directory, checkpoints, the NaN policy,
the optimiser, interruption, the online probe, and loading a trained run back.

May import core, the components, diagnostics and config; never eval, studies or the entry points.
"""
