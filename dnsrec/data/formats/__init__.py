"""One small reader per dataset file format; each returns tokens in file order (`dnsrec.data.raw`)."""

from __future__ import annotations

from dnsrec.data.formats.douban import parse_dmsc_csv, read_dmsc_csv
from dnsrec.data.formats.gowalla import parse_gowalla, read_gowalla
from dnsrec.data.formats.movielens import (
    ML100K_GENRES,
    parse_movies_dat,
    parse_ratings_dat,
    parse_u_data,
    parse_u_genre,
    parse_u_item,
    read_movielens_zip,
    read_movies_dat,
    read_ratings_dat,
    read_u_data,
    read_u_item,
)
from dnsrec.data.formats.recbole import parse_inter, parse_item, read_inter, read_item
from dnsrec.data.formats.sasrec import parse_sasrec_txt, read_sasrec_txt

__all__ = [
    "ML100K_GENRES",
    "parse_dmsc_csv",
    "parse_gowalla",
    "parse_inter",
    "parse_item",
    "parse_movies_dat",
    "parse_ratings_dat",
    "parse_sasrec_txt",
    "parse_u_data",
    "parse_u_genre",
    "parse_u_item",
    "read_dmsc_csv",
    "read_gowalla",
    "read_inter",
    "read_item",
    "read_movielens_zip",
    "read_movies_dat",
    "read_ratings_dat",
    "read_sasrec_txt",
    "read_u_data",
    "read_u_item",
]
