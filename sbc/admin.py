# -*- test-case-name: tests.test_admin -*-
"""The admin HTTP endpoint: a small ``twisted.web`` resource tree.

``GET /healthz`` calls the ``health`` callable given to :func:`build_admin_site` and returns
its dict as JSON: status 200 when ``dict["status"] == "ok"``, otherwise 503 (as does a
callable that raises).  Load balancers and systemd watchdogs poll it; the service passes a
callable that reports listener state.

``GET /readyz`` calls a ``ready`` callable returning ``(ready, details)``: status 200 with the
details as JSON when ready, otherwise 503 (as does a callable that raises).  Ready means
"send me calls": the service runs, accepts new calls and the agent host is reachable (see
:meth:`sbc.observe.Observability.ready`).  Without a ``ready`` callable, ``/readyz`` is
absent.

``GET /metrics`` is a :class:`sbc.metrics.MetricsResource` mounted by
:func:`build_admin_root` when given, or later with ``root.putChild(b"metrics", resource)``.

``/v1`` holds the agent event streams (WebSocket ``/v1/events`` and
``/v1/calls/{call_id}/events``, see :mod:`sbc.agent.websocket`) when ``events`` is given.

The tree holds no reactor and opens no socket: the service listens with the returned
``Site`` on ``[admin] address``/``port``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

__all__ = ["HealthResource", "IndexResource", "ReadyResource", "build_admin_root", "build_admin_site"]

HealthCallable = Callable[[], dict[str, Any]]
ReadyCallable = Callable[[], tuple[bool, dict[str, Any]]]


def _json(request: Request, code: int, body: object) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, sort_keys=True, default=str).encode("utf-8") + b"\n"


class HealthResource(Resource):
    """``/healthz``: 200 with the health dict when its status is "ok", else 503."""

    isLeaf = True
    log = Logger()

    def __init__(self, health: HealthCallable) -> None:
        super().__init__()
        self._health = health

    def render_GET(self, request: Request) -> bytes:
        if request.postpath not in ([], [b""]):
            return _json(request, 404, {"error": "not found"})
        try:
            report = self._health()
            if not isinstance(report, dict):
                raise TypeError(f"health callable returned {type(report).__name__}, not dict")
        except Exception:
            self.log.failure("health check raised")
            return _json(request, 503, {"status": "error", "error": "health check failed"})
        code = 200 if report.get("status") == "ok" else 503
        return _json(request, code, report)

    def render_HEAD(self, request: Request) -> bytes:
        return self.render_GET(request)


class ReadyResource(Resource):
    """``/readyz``: 200 with the details when ``ready()`` says ready, else 503."""

    isLeaf = True
    log = Logger()

    def __init__(self, ready: ReadyCallable) -> None:
        super().__init__()
        self._ready = ready

    def render_GET(self, request: Request) -> bytes:
        if request.postpath not in ([], [b""]):
            return _json(request, 404, {"error": "not found"})
        try:
            ok, details = self._ready()
            if not isinstance(details, dict):
                raise TypeError(f"ready callable returned {type(details).__name__} details, not dict")
        except Exception:
            self.log.failure("readiness check raised")
            return _json(request, 503, {"ready": False, "error": "readiness check failed"})
        body = dict(details)
        body["ready"] = bool(ok)
        return _json(request, 200 if ok is True else 503, body)

    def render_HEAD(self, request: Request) -> bytes:
        return self.render_GET(request)


class IndexResource(Resource):
    """``/``: lists the children, so an operator poking the port sees what is there."""

    def render_GET(self, request: Request) -> bytes:
        names = sorted("/" + name.decode("ascii") for name in self.children)
        return _json(request, 200, {"service": "sbc", "endpoints": names})

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self
        return _NotFound()


class _NotFound(Resource):
    isLeaf = True

    def render(self, request: Request) -> bytes:
        return _json(request, 404, {"error": "not found"})


def build_admin_root(health: HealthCallable, *, ready: ReadyCallable | None = None,
                     metrics: Resource | None = None, events: Resource | None = None) -> Resource:
    """The resource tree alone (for tests, or to mount more children before serving).

    ``events`` is mounted at ``/v1`` (:func:`sbc.agent.websocket.events_resource`).
    """
    root = IndexResource()
    root.putChild(b"healthz", HealthResource(health))
    if ready is not None:
        root.putChild(b"readyz", ReadyResource(ready))
    if metrics is not None:
        root.putChild(b"metrics", metrics)
    if events is not None:
        root.putChild(b"v1", events)
    return root


def build_admin_site(health: HealthCallable, *, ready: ReadyCallable | None = None,
                     metrics: Resource | None = None, events: Resource | None = None) -> Site:
    """A ``Site`` serving the admin tree; listen on it with ``[admin] address``/``port``."""
    site = Site(build_admin_root(health, ready=ready, metrics=metrics, events=events))
    site.displayTracebacks = False
    return site
