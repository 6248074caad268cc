"""Vendor quirk plugins, discovered with twisted.plugin.

Third-party distributions may add modules to this package: extend the search path
so that every ``plugins`` directory on ``sys.path`` is scanned.
"""
from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__: list[str] = []
