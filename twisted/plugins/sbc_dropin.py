from twisted.application.service import ServiceMaker

sbc = ServiceMaker("sbc", "sbc.tap", "SIP session border controller / B2BUA", "sbc")
