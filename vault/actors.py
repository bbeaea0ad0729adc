"""Who is acting, and what their role lets them do.

Roles follow docs/design.md: administrator, ASB officer, information-governance (SAR) officer,
police liaison, auditor (read-only custody) and ingest agent (write-only). Every action on
footage carries an :class:`Actor`, which the custody ledger records as who and from where.
"""

from __future__ import annotations

import enum
import getpass
import os
import socket
from dataclasses import dataclass


class Role(str, enum.Enum):
    ADMINISTRATOR = "administrator"
    ASB_OFFICER = "asb_officer"
    IG_OFFICER = "ig_officer"
    POLICE_LIAISON = "police_liaison"
    AUDITOR = "auditor"
    INGEST_AGENT = "ingest_agent"
    # Not a vault user: the named recipient of a share, acting through its share token.
    SHARE_RECIPIENT = "share_recipient"


@dataclass(frozen=True)
class Actor:
    """The person or agent behind an action, as the custody ledger records it."""

    user: str
    role: Role
    organisation: str | None = None
    client_addr: str | None = None

    @classmethod
    def local_operator(cls) -> Actor:
        """The operator at this machine's shell (the CLI acts as an administrator)."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry in some containers
            user = str(os.getuid())
        return cls(user=f"local:{user}", role=Role.ADMINISTRATOR, client_addr=socket.gethostname())


@dataclass(frozen=True)
class Purpose:
    """Why footage is being touched: recorded with every access (need-to-know)."""

    purpose: str
    lawful_basis: str | None = None
    reference: str | None = None  # case, crime or SAR reference
