"""Example levyjepa method plugin: ``align_uniform`` (see ``align_uniform.py``)."""
