"""Recipes: YAML loading, the typed schema, renamed keys, plugins.

May import core and the component packages (encoders, priors, methods, data); never training,
studies or the entry points.
"""
