# -*- test-case-name: tests.test_media_relay -*-
"""Media anchoring: the media-engine interface and the pure media core live in
`sbc.media.core` (no Twisted); the built-in RTP relay is `sbc.media.relay` and SRTP is
`sbc.media.srtp`.  Nothing is imported here, so importing the pure core never pulls in
Twisted."""
