"""User routes: who am I (users and tokens are managed with ``evidence-vault admin``)."""

from __future__ import annotations

from fastapi import APIRouter

from vault.casework.policy import Permission

from ..deps import ContextDep
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
def me(ctx: ContextDep) -> UserPublic:
    ctx.require(Permission.SELF)
    return UserPublic(
        name=ctx.principal.name,
        role=ctx.principal.role,
        organisation=ctx.principal.organisation,
        sites=sorted(ctx.principal.sites),
    )


__all__ = ["router"]
