# -*- test-case-name: tests.test_agent_hub -*-
"""The agent event channel (Twisted side).

:mod:`sbc.agent.hub` fans :mod:`sbc.events` values out with a bounded replay buffer;
:mod:`sbc.agent.websocket` serves them on the admin HTTP server (``/v1/events``,
``/v1/calls/{call_id}/events``); :mod:`sbc.agent.webhook` POSTs them signed the way
Standard Webhooks sign.
"""
