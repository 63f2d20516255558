"""POST a JSON document to a URL someone configured: job callbacks and drift alerts."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class WebhookFailed(Exception):
    """The URL did not answer 2xx (an error status, a refused or timed-out connection)."""


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a bodyless GET and call it done.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects)


def post_json(url: str, document: dict[str, Any], timeout: float, user_agent: str = "onnxq") -> int:
    """POST `document` as JSON; return the status, raise WebhookFailed unless it is 2xx.

    A malformed URL raises ValueError, as urllib does.
    """
    request = urllib.request.Request(
        url,
        data=json.dumps(document).encode(),
        headers={"Content-Type": "application/json", "User-Agent": user_agent},
        method="POST",
    )
    try:
        with _NO_REDIRECTS.open(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise WebhookFailed(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise WebhookFailed(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= status < 300:
        raise WebhookFailed(f"HTTP {status}")
    return status
