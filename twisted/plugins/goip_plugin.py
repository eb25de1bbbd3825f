from twisted.application.service import ServiceMaker

goip = ServiceMaker("goip-tw", "goip_tw.tap", "GSM/LTE-to-VoIP gateway (software GoIP)", "goip")
