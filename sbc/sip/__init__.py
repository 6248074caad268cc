"""Sans-IO SIP core: messages, URIs, SDP, transactions, dialogs.  No Twisted imports here."""
