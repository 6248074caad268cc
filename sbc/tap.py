# -*- test-case-name: tests.test_tap -*-
"""``twistd sbc``: command-line options and the service maker.

The drop-in ``twisted/plugins/sbc_dropin.py`` names this module by string, so nothing here is
imported until ``twistd sbc`` (or ``twist sbc``) actually runs.  The configuration is loaded
and validated in :meth:`Options.postOptions`, before any port is opened; a bad file stops the
process with one line (``file: key: problem``) and no traceback.  This is the only module
that touches the global reactor.
"""

from __future__ import annotations

from twisted.application.service import MultiService
from twisted.logger import Logger
from twisted.python import usage

from sbc.config import Config, ConfigError, load_config

__all__ = ["ConfigExit", "Options", "makeService"]

DEFAULT_CONFIG = "etc/sbc.toml"

log = Logger()


class ConfigExit(SystemExit):
    """Stop the process because the configuration is bad.

    A ``SystemExit`` rather than a ``usage.UsageError``: twistd and twist print the whole
    usage text before a ``UsageError``, which buries the one line that matters.  Python
    prints the message of a ``SystemExit`` to stderr, alone, and exits with status 1.
    """

    def __init__(self, error: ConfigError) -> None:
        super().__init__(str(error))
        self.error = error


class Options(usage.Options):
    """Options of ``twistd sbc``.  After parsing, :attr:`loaded_config` holds the config."""

    synopsis = "[-c FILE]"
    longdesc = (
        "Run the SIP session border controller.  The TOML configuration is read and "
        "validated before anything listens; see README.md for every key."
    )
    optParameters = [
        ["config", "c", DEFAULT_CONFIG, "Path to the TOML configuration file."],
    ]

    loaded_config: Config | None = None

    def postOptions(self) -> None:
        try:
            self.loaded_config = load_config(self["config"])
        except ConfigError as e:
            raise ConfigExit(e) from None


def makeService(options: Options) -> MultiService:
    """Build the SBC's service tree from parsed options (called by twistd/twist)."""
    import importlib

    from twisted.internet import reactor  # installed by twistd/twist by now

    # Looked up through sys.modules each time (tests substitute the module).
    build_service = importlib.import_module("sbc.service").build_service

    config = options.loaded_config
    if config is None:  # options built without parseOptions(), e.g. by a caller in code
        try:
            config = load_config(options["config"])
        except ConfigError as e:
            raise ConfigExit(e) from None
    log.info(
        "sbc configuration {path}: {listeners} listener(s), {trunks} trunk(s)",
        path=str(config.path),
        listeners=len(config.listen),
        trunks=len(config.trunks),
    )
    service = build_service(config, reactor)
    tune_gc()
    return service


#: Cyclic garbage collector thresholds for the SBC process (CPython's default is 700, 10, 10).
#: Nearly everything a call allocates is freed by reference counting; what the collector
#: finds is rare, while each young-generation pass walks every object allocated since the
#: last one.  Collecting less often is worth about a fifth of the CPU per call under load.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Move what start-up allocated (modules, configuration, the service tree) out of the
    collector's sight (``gc.freeze``) and collect young objects less often."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
