"""POST a JSON document to a URL someone configured: job callbacks and drift alerts."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

from onnxq.destinations import DestinationPolicy, ForbiddenDestination


class WebhookFailed(Exception):
    """The URL did not answer 2xx (an error status, a refused or timed-out connection)."""


class DestinationRefused(WebhookFailed):
    """The URL's address is one onnxq does not POST to: no retry will change that."""


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a bodyless GET and call it done; a redirect
    # could also lead past the destination check.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _guarded(base: type[http.client.HTTPConnection], policy: DestinationPolicy) -> type:
    """`base` whose socket goes only to an address `policy` allows (checked at connect)."""

    class Guarded(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # http.client opens every socket through this hook, the TLS one included.
            self._create_connection = lambda address, timeout, source=None: policy.connect(
                address[0], address[1], timeout, source
            )

    return Guarded


class _GuardedHTTP(urllib.request.HTTPHandler):
    def __init__(self, policy: DestinationPolicy):
        super().__init__()
        self._connection = _guarded(http.client.HTTPConnection, policy)

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)


class _GuardedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, policy: DestinationPolicy):
        super().__init__()
        self._connection = _guarded(http.client.HTTPSConnection, policy)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req, context=self._context)


def post_json(
    url: str,
    document: dict[str, Any],
    timeout: float,
    user_agent: str = "onnxq",
    *,
    policy: DestinationPolicy,
) -> int:
    """POST `document` as JSON; return the status, raise WebhookFailed unless it is 2xx.

    The connection goes only where `policy` allows (DestinationRefused otherwise), never through
    an environment proxy (which would hide the real destination from the check). A malformed
    URL raises ValueError, as urllib does.
    """
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        _RefuseRedirects,
        _GuardedHTTP(policy),
        _GuardedHTTPS(policy),
    )
    request = urllib.request.Request(
        url,
        data=json.dumps(document).encode(),
        headers={"Content-Type": "application/json", "User-Agent": user_agent},
        method="POST",
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise WebhookFailed(f"HTTP {exc.code}") from None
    except ForbiddenDestination as exc:  # not an OSError: urllib lets it through as it is
        raise DestinationRefused(exc.message) from None
    except OSError as exc:  # URLError included
        raise WebhookFailed(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= status < 300:
        raise WebhookFailed(f"HTTP {status}")
    return status
