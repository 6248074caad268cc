# -*- test-case-name: tests.test_quirks_loader -*-
"""Discover the vendor quirk plugins: ``twisted.plugin.getPlugins(IVendorQuirk, plugins)``.

The top-level ``plugins`` package extends its ``__path__`` with every ``plugins`` directory
on ``sys.path`` that has no ``__init__.py`` (:func:`twisted.plugin.pluginPackagePaths`), so a
third-party distribution ships a quirk by installing ``plugins/<name>.py`` -- and no
``plugins/__init__.py`` -- next to its own packages.

``getPlugins`` logs and skips a module that fails to import; an SBC must not start with a
vendor silently missing, so :func:`discover` imports every plugin module first and stops
with :class:`PluginError` naming the module when one fails, and also when:

* an object in a plugin module provides ``IPlugin`` but not ``IVendorQuirk``, or
  ``IVendorQuirk`` but not ``IPlugin`` (it would never be found);
* a plugin does not really implement the interface (``zope.interface.verify``), or its
  ``name``, ``title``, ``order`` or ``defaults`` are of the wrong kind;
* two plugins have the same ``name``, or two ``plugins`` directories hold a module of the
  same name (one would silently hide the other).

The result is in (order, name) order.  ``getPlugins`` writes ``dropin.cache`` beside the
plugin modules where it can (see docs/plugins.md for read-only installs).
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Any

from twisted.plugin import IPlugin, getPlugins
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from .interface import NAME_RE, IVendorQuirk, VendorDefaults

__all__ = ["PluginError", "discover", "registry", "plugin_modules"]


class PluginError(Exception):
    """A vendor plugin cannot be used; the message names it and says why."""


def plugin_modules(package: ModuleType) -> dict[str, str]:
    """``{module name: file}`` of every plugin module on the package's path (sorted)."""
    found: dict[str, str] = {}
    for directory in getattr(package, "__path__", ()):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for entry in names:
            if not entry.endswith(".py") or entry == "__init__.py" or entry.startswith("."):
                continue
            name = entry[:-3]
            if not name.isidentifier():
                continue
            path = os.path.join(directory, entry)
            if name in found and os.path.realpath(found[name]) != os.path.realpath(path):
                raise PluginError(f"vendor plugin module {package.__name__}.{name} is installed twice: "
                                  f"{found[name]} and {path}; remove one")
            found.setdefault(name, path)
    return dict(sorted(found.items()))


def _check(quirk: Any, where: str) -> None:
    try:
        verifyObject(IVendorQuirk, quirk)
    except Invalid as e:
        raise PluginError(f"vendor plugin {where} does not implement IVendorQuirk: {e}") from None
    name = getattr(quirk, "name", None)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise PluginError(f"vendor plugin {where}: name must match [a-z0-9-]+, not {name!r}")
    if not isinstance(getattr(quirk, "title", None), str):
        raise PluginError(f"vendor plugin {where} ({name}): title must be a string")
    order = getattr(quirk, "order", None)
    if not isinstance(order, int) or isinstance(order, bool):
        raise PluginError(f"vendor plugin {where} ({name}): order must be an int, not {order!r}")
    if not isinstance(getattr(quirk, "defaults", None), VendorDefaults):
        raise PluginError(f"vendor plugin {where} ({name}): defaults must be a VendorDefaults")


def _import_all(package: ModuleType) -> dict[str, ModuleType]:
    modules = {}
    for name, path in plugin_modules(package).items():
        qualified = f"{package.__name__}.{name}"
        try:
            modules[qualified] = importlib.import_module(qualified)
        except Exception as e:  # noqa: BLE001 - any failure is reported with the module's name
            raise PluginError(f"vendor plugin module {qualified} ({path}) failed to import: "
                              f"{type(e).__name__}: {e}") from e
    return modules


def discover(package: ModuleType | None = None) -> tuple[Any, ...]:
    """Every vendor quirk plugin, in (order, name) order; raises :class:`PluginError`."""
    if package is None:
        import plugins as package  # the top-level plugin package
    modules = _import_all(package)
    where: dict[int, str] = {}
    for qualified, module in modules.items():
        for attr, obj in sorted(vars(module).items()):
            if attr.startswith("_") or isinstance(obj, type) or isinstance(obj, ModuleType):
                continue
            if getattr(obj, "__module__", qualified) != qualified and not IPlugin.providedBy(obj):
                continue
            plugin = IPlugin.providedBy(obj)
            quirk = IVendorQuirk.providedBy(obj)
            if plugin and not quirk:
                raise PluginError(f"{qualified}.{attr} is a plugin in the vendor plugin package but does "
                                  "not provide IVendorQuirk")
            if quirk and not plugin:
                raise PluginError(f"{qualified}.{attr} provides IVendorQuirk but not twisted.plugin.IPlugin, "
                                  "so it would not be discovered: add @implementer(IPlugin, IVendorQuirk)")
            if plugin:
                where.setdefault(id(obj), f"{qualified}.{attr}")
    found: list[Any] = []
    seen: set[int] = set()
    for quirk in getPlugins(IVendorQuirk, package):
        if id(quirk) in seen:
            continue
        seen.add(id(quirk))
        found.append(quirk)
    names: dict[str, str] = {}
    for quirk in found:
        label = where.get(id(quirk), repr(quirk))
        _check(quirk, label)
        if quirk.name in names:
            raise PluginError(f"two vendor plugins are named {quirk.name!r}: {names[quirk.name]} and {label}")
        names[quirk.name] = label
    return tuple(sorted(found, key=lambda q: (q.order, q.name)))


def registry(package: ModuleType | None = None) -> dict[str, Any]:
    """``{name: plugin}`` of :func:`discover`, in (order, name) order."""
    return {q.name: q for q in discover(package)}


def _main() -> None:  # pragma: no cover - a debugging aid: python -m sbc.quirks.loader
    for quirk in discover():
        print(f"{quirk.order:5d} {quirk.name:14s} {quirk.title}  ({type(quirk).__module__})")


if __name__ == "__main__":  # pragma: no cover
    try:
        _main()
    except PluginError as e:
        sys.exit(str(e))
