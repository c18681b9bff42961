"""An example levyjepa plugin (see priors.py)."""
