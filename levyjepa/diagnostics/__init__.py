"""What a run measures and draws about its representation: rank metrics, the token field's fit to
the prior (characteristic-function inversion), the pictures.

May import core and the component packages; never eval, config, training, studies or the entry
points.
"""
