"""An example levyjepa plugin (see priors.py and stable.py)."""
