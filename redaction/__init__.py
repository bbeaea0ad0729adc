"""redaction package."""
