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
4. **Error pages.** Whatever a page's route raises is an HTML page (``error.html``), never the
   API's JSON body nor a bare "Internal Server Error": a vault error (media and plan errors
   from redaction, ingest errors included) with the API's status and a sentence saying what
   to do (:func:`advice_for`); Starlette's own errors with theirs; anything else 500, logged.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import urllib.parse
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest.errors import NvrError
from redaction.errors import ChunkError, DetectorUnavailable, EncodeError, MediaError, PlanError
from vault.config import Settings
from vault.errors import (
    AccessDenied,
    IntegrityError,
    KeyUnavailable,
    Shredded,
    StorageError,
    VaultError,
)

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


_log = logging.getLogger(__name__)

#: What a person can do about an error, by its class (most specific first; check 4). Errors
#: not named here (refusals, bad input, not found) say what to do in their own message.
ADVICE: tuple[tuple[type[VaultError], str], ...] = (
    (ChunkError, "The footage is too long or too damaged to be handled in parts. Try a shorter "
     "window; if it fails again, tell your administrator, quoting this page's address."),
    (MediaError, "The footage of this recording cannot be decoded: the file may be damaged or "
     "cut short, or it is not video. Try another recording from this camera, and tell your "
     "administrator, quoting this page's address, so they can check it against the camera's "
     "copy."),
    (PlanError, "The redaction plan does not fit this footage. Go back, reload the page and "
     "make the change again; if it fails again, tell your administrator."),
    (DetectorUnavailable, "The face detector could not start on the device this vault is set "
     "to use, so nothing was redacted. Tell your administrator, quoting this page's address."),
    (EncodeError, "The redacted copy could not be written. Try again in a few minutes; if it "
     "fails again, tell your administrator."),
    (Shredded, "This footage was deleted by the retention schedule and cannot be recovered."),
    (IntegrityError, "Stored data failed its integrity check, so nothing was shown. Do not use "
     "another copy: tell your administrator, quoting this page's address, so they can run "
     "'evidence-vault fixity check'."),
    (KeyUnavailable, "The vault could not open an encryption key. Tell your administrator "
     "(the key service or keyring may be unavailable)."),
    (StorageError, "The vault's storage could not be reached. Wait a few minutes and try "
     "again; if it persists, tell your administrator."),
    (NvrError, "The camera's recorder did not answer as expected. Check it is switched on and "
     "reachable, then try again; if it persists, tell your administrator."),
)
#: For an error nobody expected (a bug): the page gives no detail, the log has it.
UNEXPECTED = ("Something went wrong in the vault and nothing was changed by this step. Try "
              "again; if it happens again, tell your administrator the time and this page's "
              "address.")


def advice_for(error: VaultError) -> str | None:
    """What a person can do about ``error`` (check 4), or None when its message says it."""
    for cls, advice in ADVICE:
        if isinstance(error, cls):
            return advice
    return None


def make_route_class(templates: Jinja2Templates) -> type[APIRoute]:
    """An APIRoute whose errors become HTML pages (check 4: not the API's JSON) and whose
    responses all carry the page headers (check 3)."""

    def error_page(request: Request, status: int, kind: str, message: str,
                   advice: str | None, headers: dict[str, str] | None = None) -> Response:
        return templates.TemplateResponse(
            request, "error.html",
            {"status": status, "kind": kind, "message": message, "advice": advice,
             "web": getattr(request.state, "web", None)},
            status_code=status, headers=headers)

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
                    response = error_page(
                        request, 404, "not_found",
                        "There is no page at this address. Check it, or start again.", None)
                except VaultError as error:
                    status, kind = status_for(error)
                    response = error_page(request, status, kind, str(error), advice_for(error))
                except StarletteHTTPException as error:
                    response = error_page(
                        request, error.status_code, "http_error", str(error.detail),
                        "Go back and try again, or start again from the first page.",
                        dict(error.headers or {}))
                except Exception:
                    _log.exception("web page %s failed", request.url.path)
                    response = error_page(request, 500, "vault_error",
                                          "There is a problem with the vault.", UNEXPECTED)
                for name, value in PAGE_HEADERS.items():
                    response.headers.setdefault(name, value)
                return response

            return web_handler

    return WebRoute


__all__ = [
    "ADVICE",
    "CSP",
    "CSRF_FIELD",
    "PAGE_HEADERS",
    "CsrfRefused",
    "SignInRequired",
    "UNEXPECTED",
    "advice_for",
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
