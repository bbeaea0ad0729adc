"""The chain of custody: custody entries (format v1), the RFC 6962 Merkle tree, C2SP
checkpoints and the ledger's signing keys. Imports only :mod:`vault.storage` and the root."""
