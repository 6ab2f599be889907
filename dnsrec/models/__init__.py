"""Plain torch sequential recommenders (they import nothing else of the project)."""

from dnsrec.models.fdsa import FDSA, FDSAConfig
from dnsrec.models.features import FeatureEmbedding, padded_table
from dnsrec.models.sasrec import SASRec, SASRecConfig
from dnsrec.models.sasrecf import SASRecF

__all__ = ["FDSA", "FDSAConfig", "FeatureEmbedding", "SASRec", "SASRecConfig", "SASRecF", "padded_table"]
