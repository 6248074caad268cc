"""SIP session border controller / B2BUA on Twisted."""
