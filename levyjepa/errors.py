"""User-facing errors.

Everything a user can get wrong (a recipe key, a component name, a parameter value, a missing
file) raises :class:`ConfigError` with a one-line message that names the offending key, file or
value and, where there are some, the valid choices. The command-line entry points print that
line and exit with status 2; tracebacks are reserved for bugs (or ``--traceback``).
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A problem with user input, reported as one readable line."""
