# -*- test-case-name: tests.integration.test_prack_e2e -*-
"""
PRACK (RFC 3262) toward the agent host end to end, between real SIPp peers, over UDP and TCP.

The agent-side SIPp (``bench/scenarios/flows/prack_agent.xml``) answers the SBC's INVITE,
which must offer 100rel, with a reliable 183 carrying SDP (``Require: 100rel``, ``RSeq: 1``)
and fails unless the SBC PRACKs it in the early dialog (``RAck: 1 1 INVITE``, CSeq 2, its To
tag, to its Contact); it answers the PRACK 200, then the INVITE 200, and checks that the
PBX's BYE comes with CSeq 3.  The PBX-side SIPp (``prack_pbx.xml``) does not offer 100rel: it
must receive the 183 unreliably, with the agent's SDP, and completes the call.

``prack_both`` runs the same agent against a PBX that supports 100rel too: the PBX gets a
reliable 183 with the SBC's own RSeq, PRACKs it on its leg, and the SBC's 200 follows.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from .test_sipp_flows import FlowTests


class PrackTowardTheAgent(FlowTests, SynchronousTestCase):
    """Reliable 183 with SDP from the agent host, PRACKed by the SBC; unreliable to the PBX."""

    flow = "prack"


class PrackOnBothLegs(FlowTests, SynchronousTestCase):
    """The PBX supports 100rel as well: one PRACK per leg, none crosses the SBC."""

    flow = "prack_both"
    agent_scenario = "prack_agent.xml"
