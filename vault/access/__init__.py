"""Who is acting: users, API tokens, OpenID Connect, local credentials, web sessions and
refused requests. Imports the :class:`vault.vault.Vault` object and the layers below it."""
