"""User-facing errors.

Everything a user can get wrong (a recipe key, a component name, a parameter value, a missing
file) raises :class:`ConfigError` with a one-line message that names the offending key, file or
value and, where there are some, the valid choices. The command-line entry points print that
line and exit with status 2; tracebacks are reserved for bugs (or ``--traceback``).

A data file that cannot be decoded during training is a user problem too: :class:`UnreadableFile`
(a ``ConfigError``) names the file and the cause, and stays one line when it is raised in a
DataLoader worker process (see :mod:`levyjepa.data.loading.skipped_files` for ``data.on_error``).
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A problem with user input, reported as one readable line."""


class UnreadableFile(ConfigError):
    """A data file that cannot be decoded; the message names the file and the cause.

    Raised in a DataLoader worker, such an error reaches the main process re-created by torch as
    ``type(err)("Caught <Name> in DataLoader worker process N.\\nOriginal Traceback ...")``,
    the worker's whole traceback as the message. The constructor recognises that form and keeps
    the original message only (the one line the command line prints); the worker's report is
    kept in :attr:`worker_report` and, on Python 3.11+, attached as a note (shown by
    ``--traceback``).
    """

    def __init__(self, *args: object) -> None:
        self.worker_report: str | None = None
        if len(args) == 1 and isinstance(args[0], str) and _is_worker_report(args[0], self):
            self.worker_report = args[0]
            args = (_original_message(args[0], self),)
        super().__init__(*args)
        if self.worker_report is not None and hasattr(self, "add_note"):
            self.add_note(self.worker_report)


def _is_worker_report(text: str, err: BaseException) -> bool:
    """Whether ``text`` is torch's ``Caught <Name> in ... .\\nOriginal Traceback ...`` form."""
    return (text.startswith(f"Caught {type(err).__name__} ")
            and "\nOriginal Traceback (most recent call last):" in text)


def _original_message(report: str, err: BaseException) -> str:
    """The message after the traceback's last ``module.Name: `` (the raised error's own)."""
    cls = type(err)
    for prefix in (f"{cls.__module__}.{cls.__qualname__}: ", f"{cls.__qualname__}: "):
        at = report.rfind("\n" + prefix)
        if at >= 0:
            return report[at + 1 + len(prefix):].strip()
    return report.strip().splitlines()[-1]
