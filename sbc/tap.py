# -*- test-case-name: tests.test_tap -*-
"""``twistd sbc``: command-line options and the service maker.

The drop-in ``twisted/plugins/sbc_dropin.py`` names this module by string, so nothing here is
imported until ``twistd sbc`` (or ``twist sbc``) actually runs.  The configuration is loaded
and validated in :meth:`Options.postOptions`, before any port is opened; a bad file stops the
process with one line (``file: key: problem``) and no traceback.  This is the only module
that touches the global reactor.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.task import LoopingCall
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
    if config.sbc.gc_interval:
        FullCollection(config.sbc.gc_interval, reactor).setServiceParent(service)
    return service


#: Thresholds of CPython's cyclic garbage collector in the SBC process: the young generation
#: at CPython's default (700 allocations), the older generations never automatically.
#:
#: Nearly everything a call allocates is freed by reference counting (a finished call leaves
#: no cycles: ``tests/test_b2bua_memory.py``).  What keeps memory under load is the 64*T1 of
#: every transaction: at 600 calls/s some millions of live objects, which an automatic
#: middle or full collection walks -- 0.5 s and 1 s pauses were measured, long enough for
#: the peers to retransmit.  A young collection walks only what was allocated since the
#: last one, a fraction of a millisecond.  Garbage cycles that live long enough to leave the
#: young generation are found by :class:`FullCollection`, on a slow timer.
GC_THRESHOLDS = (700, 2**31 - 1, 2**31 - 1)


def tune_gc() -> None:
    """Move what start-up allocated (modules, configuration, the service tree) out of the
    collector's sight (``gc.freeze``) and keep automatic collections to the young
    generation."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class FullCollection(Service):
    """Runs a full cyclic collection every ``interval`` seconds (``[sbc] gc_interval``) and
    logs how long it took and what it freed."""

    def __init__(self, interval: float, clock: Any) -> None:
        self.interval = interval
        self.clock = clock
        self._loop: LoopingCall | None = None
        self.runs = 0
        self.freed = 0

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.collect)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False)

    def stopService(self) -> Any:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        return super().stopService()

    def collect(self) -> None:
        import gc
        import time

        started = time.perf_counter()
        freed = gc.collect()
        took = time.perf_counter() - started
        self.runs += 1
        self.freed += freed
        log.info("full garbage collection: {freed} unreachable objects freed in {ms:.0f} ms",
                 freed=freed, ms=took * 1000)
