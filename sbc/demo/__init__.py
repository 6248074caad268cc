"""A small demo agent host: a SIP UAS that answers every call and echoes its audio.

``sbc.demo.agent`` is the sans-IO user agent, ``sbc.demo.echo`` the RTP echo (the only part
with sockets besides the SIP transport) and ``sbc.demo.tap`` the ``twistd sbc-demo-agent``
command.  It exists for the README quick start and for tests; it is not a voice agent.
"""
