from twisted.application.service import ServiceMaker

demo = ServiceMaker("sbc-demo-agent", "sbc.demo.tap", "Demo agent host: answers calls, echoes RTP", "sbc-demo-agent")
