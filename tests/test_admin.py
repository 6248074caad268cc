# -*- test-case-name: tests.test_admin -*-
"""Tests for sbc.admin: the /healthz resource tree."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, readBody
from twisted.web.resource import getChildForRequest
from twisted.web.server import Site
from twisted.web.test.requesthelper import DummyRequest

from sbc.admin import build_admin_root, build_admin_site


def get(root: Any, path: bytes, method: bytes = b"GET") -> tuple[int, dict[bytes, Any], bytes]:
    """Render ``path`` synchronously; return (code, headers, body)."""
    segments = path.lstrip(b"/").split(b"/")
    request = DummyRequest(segments)
    request.method = method
    resource = getChildForRequest(root, request)
    body = resource.render(request)
    headers = {k.lower(): v for k, v in request.responseHeaders.getAllRawHeaders()}
    return request.responseCode or 200, headers, body


class HealthzTests(SynchronousTestCase):
    def test_ok_is_200_json(self) -> None:
        root = build_admin_root(lambda: {"status": "ok", "listeners": {"udp 127.0.0.1:5060": "up"}})
        code, headers, body = get(root, b"/healthz")
        self.assertEqual(code, 200)
        self.assertEqual(headers[b"content-type"], [b"application/json"])
        self.assertEqual(headers[b"cache-control"], [b"no-store"])
        self.assertEqual(json.loads(body), {"status": "ok", "listeners": {"udp 127.0.0.1:5060": "up"}})

    def test_not_ok_is_503_with_report(self) -> None:
        root = build_admin_root(lambda: {"status": "degraded", "listeners": {"tcp [::1]:5060": "down"}})
        code, _, body = get(root, b"/healthz")
        self.assertEqual(code, 503)
        self.assertEqual(json.loads(body)["status"], "degraded")

    def test_missing_status_is_503(self) -> None:
        code, _, _ = get(build_admin_root(lambda: {}), b"/healthz")
        self.assertEqual(code, 503)

    def test_callable_called_per_request(self) -> None:
        states = iter(["ok", "starting", "ok"])
        root = build_admin_root(lambda: {"status": next(states)})
        self.assertEqual([get(root, b"/healthz")[0] for _ in range(3)], [200, 503, 200])

    def test_raising_callable_is_503_and_logged(self) -> None:
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

        def broken() -> dict[str, Any]:
            raise RuntimeError("listener table exploded")

        code, _, body = get(build_admin_root(broken), b"/healthz")
        self.assertEqual(code, 503)
        self.assertEqual(json.loads(body), {"status": "error", "error": "health check failed"})
        self.assertNotIn(b"exploded", body)  # no internals leak to the client
        self.assertEqual(len(observer), 1)
        self.assertEqual(observer[0]["log_format"], "health check raised")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_non_dict_is_503(self) -> None:
        code, _, _ = get(build_admin_root(lambda: "ok"), b"/healthz")  # type: ignore[arg-type,return-value]
        self.assertEqual(code, 503)
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    def test_unserialisable_values_are_stringified(self) -> None:
        import ipaddress

        code, _, body = get(build_admin_root(lambda: {"status": "ok", "addr": ipaddress.ip_address("::1")}), b"/healthz")
        self.assertEqual((code, json.loads(body)["addr"]), (200, "::1"))

    def test_post_not_allowed(self) -> None:
        from twisted.web.error import UnsupportedMethod

        with self.assertRaises(UnsupportedMethod):
            get(build_admin_root(lambda: {"status": "ok"}), b"/healthz", b"POST")

    def test_extra_path_is_404(self) -> None:
        code, _, _ = get(build_admin_root(lambda: {"status": "ok"}), b"/healthz/extra")
        self.assertEqual(code, 404)


class IndexTests(SynchronousTestCase):
    def test_index_lists_endpoints(self) -> None:
        code, _, body = get(build_admin_root(lambda: {"status": "ok"}), b"/")
        self.assertEqual((code, json.loads(body)), (200, {"service": "sbc", "endpoints": ["/healthz"]}))

    def test_unknown_path_is_404(self) -> None:
        code, _, body = get(build_admin_root(lambda: {"status": "ok"}), b"/nope")
        self.assertEqual((code, json.loads(body)), (404, {"error": "not found"}))

    def test_site(self) -> None:
        site = build_admin_site(lambda: {"status": "ok"})
        self.assertIsInstance(site, Site)
        self.assertFalse(site.displayTracebacks)
        self.assertIn(b"healthz", site.resource.children)


class LoopbackTests(TestCase):
    """One real HTTP round trip on 127.0.0.1, port 0."""

    @inlineCallbacks
    def test_healthz_over_http(self) -> Any:
        healthy = {"status": "ok"}
        port = reactor.listenTCP(0, build_admin_site(lambda: dict(healthy)), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = b"http://127.0.0.1:%d/healthz" % (port.getHost().port,)
        agent = Agent(reactor)
        response = yield agent.request(b"GET", url)
        body = yield readBody(response)
        self.assertEqual((response.code, json.loads(body)), (200, {"status": "ok"}))
        healthy["status"] = "down"
        response = yield agent.request(b"GET", url)
        body = yield readBody(response)
        self.assertEqual((response.code, json.loads(body)), (503, {"status": "down"}))


class ReadyzTests(SynchronousTestCase):
    def test_absent_without_a_ready_callable(self) -> None:
        code, _, _ = get(build_admin_root(lambda: {"status": "ok"}), b"/readyz")
        self.assertEqual(code, 404)

    def test_ready_is_200_with_details(self) -> None:
        root = build_admin_root(lambda: {"status": "ok"}, ready=lambda: (True, {"accepting": True}))
        code, headers, body = get(root, b"/readyz")
        self.assertEqual(code, 200)
        self.assertEqual(headers[b"content-type"], [b"application/json"])
        self.assertEqual(json.loads(body), {"accepting": True, "ready": True})

    def test_not_ready_is_503(self) -> None:
        root = build_admin_root(lambda: {"status": "ok"}, ready=lambda: (False, {"agent_hosts": {"a": "down"}}))
        code, _, body = get(root, b"/readyz")
        self.assertEqual((code, json.loads(body)["ready"]), (503, False))

    def test_truthy_non_bool_is_not_ready(self) -> None:
        root = build_admin_root(lambda: {"status": "ok"}, ready=lambda: ("yes", {}))  # type: ignore[arg-type,return-value]
        self.assertEqual(get(root, b"/readyz")[0], 503)

    def test_bad_shapes_are_503_and_logged(self) -> None:
        for bad in (lambda: True, lambda: (True, "fine"), lambda: (True,)):
            root = build_admin_root(lambda: {"status": "ok"}, ready=bad)  # type: ignore[arg-type]
            code, _, body = get(root, b"/readyz")
            self.assertEqual((code, json.loads(body)["ready"]), (503, False))
        self.assertEqual(len(self.flushLoggedErrors(TypeError, ValueError)), 3)

    def test_head_and_subpath(self) -> None:
        root = build_admin_root(lambda: {"status": "ok"}, ready=lambda: (True, {}))
        self.assertEqual(get(root, b"/readyz", b"HEAD")[0], 200)
        self.assertEqual(get(root, b"/readyz/x")[0], 404)

    def test_index_lists_all_three(self) -> None:
        from twisted.web.resource import Resource

        metrics = Resource()
        metrics.isLeaf = True
        root = build_admin_root(lambda: {"status": "ok"}, ready=lambda: (True, {}), metrics=metrics)
        self.assertEqual(json.loads(get(root, b"/")[2])["endpoints"], ["/healthz", "/metrics", "/readyz"])
        site = build_admin_site(lambda: {"status": "ok"}, ready=lambda: (True, {}), metrics=metrics)
        self.assertIs(site.resource.children[b"metrics"], metrics)
