"""Evidence vault core: settings, catalog, encrypted object store, keys, custody ledger, retention."""
