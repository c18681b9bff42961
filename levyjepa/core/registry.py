"""A small registry of named components (encoders, priors, data sources).

A component registers itself at import time with a decorator and is returned unchanged::

    from levyjepa import PRIORS

    @PRIORS.register("my_prior")
    class MyPrior(torch.nn.Module):
        def __init__(self, *, scale: float = 1.0) -> None: ...

A recipe section ``{name: my_prior, scale: 2.0}`` is then built with ``PRIORS.build(section)``.
Unknown names fail with the known names and the closest match; unknown or ill-typed keyword
arguments fail naming the argument, the component and its valid parameters. Parameters are
checked against the constructor's signature and type hints, so a component's ``__init__`` is
its schema. Parameters that the runner supplies (``register(name, runtime=(...))``, passed to
``build``) are not a recipe's to set. A registry made with ``call=`` also checks, when a section
is checked, that the component's ``forward`` can be called the way the runner calls it (a prior:
``forward(x, *, step)``), naming the module that defined it.
"""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from levyjepa.core.errors import ConfigError

T = TypeVar("T")

_NO_HINT = object()


class MissingParameters(ConfigError):
    """A section lacks required parameters; :attr:`missing` names them all."""

    def __init__(self, message: str, *, missing: Sequence[str], valid: str) -> None:
        super().__init__(message)
        self.missing, self.valid = list(missing), valid


class Registry:
    """Named factories of one kind of component.

    Args:
        kind: What the registry holds, used in messages (``"encoder"``, ``"prior"``, ...).
        call: How the runner calls a built component's ``forward``: argument names, positional
            ones before ``"*"``, keyword ones after (``("x", "*", "step")``); ``None``: not
            checked. Class factories (and functions annotated to return a class) are checked.
    """

    def __init__(self, kind: str, *, call: Sequence[str] | None = None) -> None:
        self.kind = kind
        self.call = None if call is None else tuple(call)
        self._entries: dict[str, Callable[..., Any]] = {}
        self._runtime: dict[str, frozenset[str]] = {}

    def register(self, name: str, *, runtime: Sequence[str] = ()) -> Callable[[T], T]:
        """Decorator registering a class or factory function under ``name``.

        Args:
            name: The name recipes use.
            runtime: Parameters the runner supplies (to :meth:`build`), never a recipe: they
                are left out of the valid parameters that messages list, and a recipe that
                sets one is refused when it is checked.

        Raises:
            ValueError: if ``name`` is already registered (two plugins must not silently
                shadow each other).
        """

        def decorator(obj: T) -> T:
            if name in self._entries:
                existing = self._entries[name]
                owner = existing.__module__
                if _rerun_as_main(obj, existing):  # python -m on a module that registers
                    return obj
                builtin = ", a built-in" if owner.partition(".")[0] == "levyjepa" else ""
                raise ValueError(
                    f"{self.kind} '{name}' is already registered (by "
                    f"{owner}.{existing.__qualname__}{builtin}); choose another name"
                )
            if not callable(obj):
                raise TypeError(f"{self.kind} '{name}': only callables can be registered")
            self._entries[name] = obj  # type: ignore[assignment]
            self._runtime[name] = frozenset(runtime)
            return obj

        return decorator

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered under ``name``.

        Raises:
            ConfigError: for an unknown name, listing the known ones and the closest match.
        """
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), self._entries, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(
                f"unknown {self.kind} '{name}'{hint}; known: {', '.join(self.names()) or 'none'}"
            ) from None

    def runtime_names(self, name: str) -> frozenset[str]:
        """The parameters of ``name`` that the runner supplies (``register(runtime=...)``)."""
        self.get(name)
        return self._runtime[name]

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """The keyword parameters a component accepts (``self`` and ``*args`` excluded)."""
        factory = self.get(name)
        target = factory.__init__ if inspect.isclass(factory) else factory
        sig = inspect.signature(target)
        return {
            p.name: p
            for p in sig.parameters.values()
            if p.name != "self"
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        }

    def check(self, section: Mapping[str, Any], *, where: str = "",
              runtime: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Validate a recipe section ``{name: ..., **kwargs}`` without building it.

        Args:
            section: The section; ``name`` selects the component, the rest are its kwargs.
            where: Dotted recipe key of the section, used in messages (e.g. ``"method.sigreg"``).
            runtime: Arguments the runner adds to the section's (see :meth:`build`).

        Returns:
            The component name and its keyword arguments (the section's and ``runtime``).

        Raises:
            ConfigError: naming the unknown component, the unknown or ill-typed kwarg, the
                missing required kwarg, or a kwarg that only the runner may set.
        """
        at = f"{where}: " if where else ""
        if not isinstance(section, Mapping) or "name" not in section:
            raise ConfigError(f"{at}a {self.kind} section needs a 'name' key; known: "
                              f"{', '.join(self.names())}")
        kwargs = {k: v for k, v in section.items() if k != "name"}
        name = section["name"]
        try:
            factory = self.get(name)
        except ConfigError as err:
            raise ConfigError(f"{at}{err}") from None
        runtime = dict(runtime or {})
        clash = sorted(set(kwargs) & (set(runtime) | self._runtime[name]))
        if clash:
            raise ConfigError(f"{at}'{clash[0]}' is set by the runner; remove it from the recipe")
        kwargs.update(runtime)
        params = self.parameters(name)
        hints = _type_hints(factory)
        settable = [p for p in params if p not in self._runtime[name]]
        valid = ", ".join(settable) or "none"
        for key, value in kwargs.items():
            if key not in params:
                close = difflib.get_close_matches(key, settable, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(
                    f"{at}unknown parameter '{key}' for {self.kind} '{name}'{hint}; "
                    f"valid parameters: {valid}"
                )
            expected = hints.get(key, _NO_HINT)
            if expected is not _NO_HINT and not _matches(value, expected):
                raise ConfigError(
                    f"{at}parameter '{key}' of {self.kind} '{name}' expects "
                    f"{_type_name(expected)}, got {value!r} ({type(value).__name__})"
                )
        missing = [
            p.name for p in params.values()
            if p.default is inspect.Parameter.empty and p.name not in kwargs
            and p.name not in self._runtime[name]  # the runner's to give
        ]
        if missing:
            raise MissingParameters(
                f"{at}{self.kind} '{name}' needs parameter(s) {', '.join(missing)}; "
                f"valid parameters: {valid}", missing=missing, valid=valid,
            )
        problem = _call_problem(factory, self.call) if self.call is not None else None
        if problem:
            raise ConfigError(f"{at}{self.kind} '{name}' (from module '{factory.__module__}'): "
                              f"{problem}")
        return name, kwargs

    def build(self, section: Mapping[str, Any], *, where: str = "", **runtime: Any) -> Any:
        """Build a component from a recipe section ``{name: ..., **kwargs}``.

        Args:
            section: The recipe section.
            where: Dotted recipe key of the section, used in messages.
            **runtime: Arguments supplied by the runner rather than the recipe (for example the
                number of classes found in the data). A recipe may not set them.

        Returns:
            Whatever the registered factory returns.
        """
        name, kwargs = self.check(section, where=where, runtime=runtime)
        try:
            return self._entries[name](**kwargs)
        except ConfigError:
            raise
        except ValueError as err:  # constructors validate their arguments with ValueError
            at = f"{where}: " if where else ""
            raise ConfigError(f"{at}{self.kind} '{name}': {err}") from err

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def _call_problem(factory: Callable[..., Any], call: tuple[str, ...]) -> str | None:
    """Why ``factory``'s products cannot be called as ``call`` says, or ``None``.

    The method checked is the class's ``forward`` (``__call__`` without one); a class that
    inherits ``nn.Module``'s placeholder forward, or a factory function without a class return
    annotation, is not checked.
    """
    cls = factory
    if not inspect.isclass(cls):
        try:
            cls = typing.get_type_hints(factory).get("return")
        except Exception:  # unresolvable annotations: nothing to check
            return None
        if not inspect.isclass(cls):
            return None
    attr = "forward" if hasattr(cls, "forward") else "__call__"
    method = getattr(cls, attr)
    if getattr(method, "__name__", "") == "_forward_unimplemented":
        return None
    try:
        sig = inspect.signature(method)
    except (TypeError, ValueError):  # builtins without a signature
        return None
    params = list(sig.parameters.values())
    if inspect.isfunction(method) and not isinstance(inspect.getattr_static(cls, attr),
                                                     staticmethod):
        params = params[1:]  # self
    star = call.index("*") if "*" in call else len(call)
    positional, keywords = call[:star], call[star + 1:]
    shown = sig.replace(parameters=[p.replace(annotation=inspect.Parameter.empty)
                                    for p in sig.parameters.values()],
                        return_annotation=inspect.Signature.empty)
    try:
        sig.replace(parameters=params).bind(*positional, **dict.fromkeys(keywords))
    except TypeError as err:
        called = ", ".join([*positional, *(f"{k}=..." for k in keywords)])
        return f"{cls.__qualname__}.{attr}{shown} cannot be called as {attr}({called}): {err}"
    return None


def _rerun_as_main(obj: Any, existing: Any) -> bool:
    """Whether ``obj`` is ``existing`` defined again because its module runs as ``__main__``.

    ``python -m levyjepa.data.generated.synthetic_video`` imports the package (which registers the
    module's components) and then executes the module once more as ``__main__``; that second
    definition is the same component, not a clash, and the first one stays registered.
    """
    import sys

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return (getattr(obj, "__module__", None) == "__main__" and spec is not None
            and spec.name == existing.__module__
            and getattr(obj, "__qualname__", None) == existing.__qualname__)


def _type_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: fall back to no type checks
        return {}


def _matches(value: Any, expected: Any) -> bool:
    """Whether a recipe value fits a type hint (recipes hold plain YAML scalars and lists)."""
    if expected is Any:
        return True
    origin = typing.get_origin(expected)
    args = typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence) or expected in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        inner = args[0] if args else Any
        return all(_matches(v, inner) for v in value)
    if origin is dict or expected is dict or origin is Mapping:
        return isinstance(value, Mapping)
    if isinstance(expected, type):
        return isinstance(value, expected)
    return True  # hints we do not interpret are not enforced


def _type_name(expected: Any) -> str:
    if isinstance(expected, type):
        return expected.__name__
    return str(expected).replace("typing.", "")


ENCODERS = Registry("encoder", call=("views",))
"""Encoders: ``(N, V, C, H, W)`` views to :class:`levyjepa.encoders.EncoderOutput`."""

PRIORS = Registry("prior", call=("x", "*", "step"))
"""Distributional priors: a tensor of embeddings (and the global step) to a scalar loss."""

METHODS = Registry("method", call=("encoder", "views", "*", "step"))
"""SSL methods: the encoder and a batch of views to named loss terms
(:class:`levyjepa.methods.MethodOutput`)."""

DATA = Registry("data source")
"""Data sources: keyword arguments to :class:`levyjepa.data.DataSplits`, or for images to
:class:`levyjepa.data.loading.image_source.ImageSource` (plain labelled images)."""

VIEWS = Registry("view pipeline", call=("source",))
"""View pipelines (the recipe's ``views`` section): an image source's labelled images to the
training (multi-view), ``train_eval`` and test splits (:mod:`levyjepa.data.views`)."""
