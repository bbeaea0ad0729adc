"""The web app's defences: session cookie, CSRF tokens, security headers, error pages.

1. **Cookie.** ``ev_session`` (``__Host-ev_session`` with ``web_cookie_secure``): HttpOnly (no
   script reads it), SameSite=Lax (another site's page cannot make the browser send it with a
   form post or an embedded video), Secure behind TLS, Path=/, no Domain, no Max-Age (it dies
   with the browser; the server ends it sooner, vault/access/web_sessions.py).
2. **CSRF.** Every form carries ``csrf_token``. Signed-in (and half-signed-in) sessions hold
   their own token server-side (synchroniser token); the sign-in form, before any session,
   uses a double-submit cookie (``ev_csrf``). A POST whose token is missing or wrong is
   refused with 403 and nothing changes; for a known user the refusal is a custody event. A
   POST whose ``Origin`` is another site is refused the same way.
3. **Headers** on every page: a Content-Security-Policy that allows scripts, styles, images
   and media from this origin only (no inline script or style, no plugins, no framing),
   ``Cache-Control: no-store`` (pages show personal data, and footage pages above all), no
   MIME sniffing, no referrer to other sites.
"""

from __future__ import annotations

import hmac
import secrets
import urllib.parse
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from vault.config import Settings
from vault.errors import AccessDenied, VaultError

from ..errors import status_for

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
CSRF_FIELD = "csrf_token"


def session_cookie_name(settings: Settings) -> str:
    """The session cookie's name: ``__Host-`` prefixed when it is Secure (check 1)."""
    return "__Host-ev_session" if settings.web_cookie_secure else "ev_session"


def csrf_cookie_name(settings: Settings) -> str:
    """The pre-sign-in CSRF cookie's name (check 2)."""
    return "__Host-ev_csrf" if settings.web_cookie_secure else "ev_csrf"


def set_cookie(response: Response, settings: Settings, name: str, value: str) -> None:
    """Set a cookie with the flags of check 1."""
    response.set_cookie(name, value, httponly=True, samesite="lax",
                        secure=settings.web_cookie_secure, path="/")


def clear_cookie(response: Response, settings: Settings, name: str) -> None:
    """Tell the browser to forget a cookie."""
    response.delete_cookie(name, httponly=True, samesite="lax",
                           secure=settings.web_cookie_secure, path="/")


def new_csrf_token() -> str:
    """A random CSRF token (256 bits)."""
    return secrets.token_urlsafe(32)


class CsrfRefused(AccessDenied):
    """A form came without its CSRF token, with a wrong one, or from another site (403)."""


def check_csrf(request: Request, sent: str | None, expected: str | None) -> None:
    """Raise CsrfRefused unless ``sent`` equals ``expected`` and the request is same-origin."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        # Hosts, not schemes: behind a TLS proxy the app itself is spoken to over http.
        if urllib.parse.urlsplit(origin).netloc != request.headers.get("host"):
            raise CsrfRefused(f"this form was sent from another site ({origin[:100]})")
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfRefused(
            "this form has expired or did not come from this site: go back, reload the page "
            "and try again"
        )


def safe_next(target: str | None, default: str = "/find") -> str:
    """``target`` if it is a path on this site (no scheme, host or ``//``), else ``default``:
    a sign-in link cannot send the officer to another site afterwards."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urllib.parse.urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return default
    return target


class SignInRequired(Exception):
    """No live, signed-in session: the browser is sent to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def redirect(url: str) -> RedirectResponse:
    """A 303 See Other (after a POST the browser GETs the target) with the page headers."""
    response = RedirectResponse(url, status_code=303)
    response.headers.update(PAGE_HEADERS)
    return response


def make_route_class(templates: Jinja2Templates) -> type[APIRoute]:
    """An APIRoute whose errors become HTML pages (not the API's JSON) and whose responses all
    carry the page headers (check 3)."""

    class WebRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def web_handler(request: Request) -> Response:
                try:
                    response = await handler(request)
                except SignInRequired as need:
                    query = urllib.parse.urlencode({"next": need.next_path})
                    response = RedirectResponse(f"/sign-in?{query}", status_code=303)
                except RequestValidationError:
                    # A malformed id or field (the API answers 422 JSON): a page, never a trace.
                    response = templates.TemplateResponse(
                        request, "error.html",
                        {"status": 404, "kind": "not_found",
                         "message": "There is no page at this address. Check it, or start again.",
                         "web": getattr(request.state, "web", None)},
                        status_code=404,
                    )
                except VaultError as error:
                    status, kind = status_for(error)
                    response = templates.TemplateResponse(
                        request, "error.html",
                        {"status": status, "kind": kind, "message": str(error),
                         "web": getattr(request.state, "web", None)},
                        status_code=status,
                    )
                for name, value in PAGE_HEADERS.items():
                    response.headers.setdefault(name, value)
                return response

            return web_handler

    return WebRoute


__all__ = [
    "CSP",
    "CSRF_FIELD",
    "PAGE_HEADERS",
    "CsrfRefused",
    "SignInRequired",
    "check_csrf",
    "clear_cookie",
    "csrf_cookie_name",
    "make_route_class",
    "new_csrf_token",
    "redirect",
    "safe_next",
    "session_cookie_name",
    "set_cookie",
]
