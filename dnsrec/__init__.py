"""dnsrec: DNS-Rec neural architecture search for sequential recommenders (RecSys 2024)."""

__version__ = "0.1.0"
