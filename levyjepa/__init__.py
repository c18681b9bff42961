"""levyjepa: self-supervised ViT pretraining with LeJEPA and Lévy-sheet priors.

The registries (encoders, priors, methods, data sources) are the extension points; importing
the package registers the built-in components, and :func:`levyjepa.config.plugins.load_plugins` adds
installed and recipe plugins.
"""

from levyjepa.core.registry import DATA, ENCODERS, METHODS, PRIORS, VIEWS, Registry

__version__ = "0.1.0"

# Importing the built-in components registers them.
from levyjepa import data, encoders, methods, priors  # noqa: E402,F401  isort: skip

__all__ = ["DATA", "ENCODERS", "METHODS", "PRIORS", "VIEWS", "Registry", "__version__"]
