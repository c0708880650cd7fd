"""Security headers on every answer: a Content-Security-Policy that lets only the console's own code run.

Scripts, styles, fonts and connections come from this origin only; no inline script or style, no
`eval`; images may also be `data:` and `blob:` URLs (previews the editor makes); no plugin, no
`<base>` elsewhere, forms post here only, and no site may frame the console (`frame-ancestors`,
with `X-Frame-Options: DENY` from Django's middleware for older browsers). `Referrer-Policy`
(`same-origin`) and `X-Content-Type-Options` come from Django's SecurityMiddleware settings.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase

from console.middleware_shapes import ResponseMiddleware

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


# What Django's middleware adds to its answers, for the few written below it (ASGI refusals before Django).
RAW_SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeadersMiddleware(ResponseMiddleware):
    """Add the Content-Security-Policy to every answer that has none of its own."""

    def process(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
