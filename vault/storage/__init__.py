"""Storage: bytes at rest. Durable writes, the ``evs1`` encryption format, key providers,
object stores and the catalog tables. Imports only the root modules of :mod:`vault`."""
