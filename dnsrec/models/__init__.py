"""Plain torch sequential recommenders (they import nothing else of the project)."""

from dnsrec.models.sasrec import SASRec, SASRecConfig

__all__ = ["SASRec", "SASRecConfig"]
