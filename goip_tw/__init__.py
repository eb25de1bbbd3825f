"""goip-tw: a Twisted-based GSM/LTE-to-VoIP gateway (a software GoIP LTE-X4)."""

__version__ = "0.1.0"
