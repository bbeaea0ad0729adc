"""User routes: who am I (users and tokens are managed with ``evidence-vault admin``)."""

from __future__ import annotations

from fastapi import APIRouter

from vault.casework.policy import Permission, require

from ..deps import PrincipalDep, RouteDep, VaultDep
from ..errors import responses
from ..schemas import UserPublic

router = APIRouter(tags=["users"])


@router.get(
    "/me",
    summary="The calling user",
    description="Your name, role, organisation and assigned sites, as the token authenticates.",
    response_model=UserPublic,
    responses=responses(401),
)
def me(vault: VaultDep, principal: PrincipalDep, route: RouteDep) -> UserPublic:
    require(vault, principal, Permission.SELF, route=route)
    return UserPublic(
        name=principal.name,
        role=principal.role,
        organisation=principal.organisation,
        sites=sorted(principal.sites),
    )


__all__ = ["router"]
