"""What people do with footage: cases, holds, subject access requests, shares, disclosure,
retention, fixity, rekeying, jobs, search, sites, and the access policy over all of them.
The top layer of the core; only :mod:`vault`'s ``__init__`` and the other packages sit above."""
