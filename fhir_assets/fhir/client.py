"""A small synchronous FHIR R4 REST client: JSON requests, errors, search paging, transactions.

The client knows nothing about Dagster or warehouses; it yields plain ``dict`` resources.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import orjson
import requests

from .errors import (
    PagingError,
    RequestError,
    ResponseFormatError,
    TransientRequestError,
    outcome_issues,
)
from .http import new_session
from .limits import Limits, PageBound
from .ratelimit import RateLimit, RateLimitedAdapter
from .redaction import scrub
from .retry import (
    TRANSIENT_STATUSES,
    IncompleteBodyError,
    RequestStats,
    RetryPolicy,
    retry_after,
)
from .searchset import Page, parse_searchset
from .urls import origin, redact, require_https, show_origin

if TYPE_CHECKING:
    from .profiles import ServerProfile

__all__ = [
    "FhirClient",
    "ForeignLinkError",
    "Page",
    "RequestStats",
    "RetryPolicy",
    "decode",
    "parse_searchset",
    "redact",
]

log = logging.getLogger(__name__)

# Search parameters: a mapping, or pairs when a parameter repeats (``_lastUpdated=ge..&..=lt..``).
Params = Mapping[str, Any] | Sequence[tuple[str, Any]]

FHIR_JSON = "application/fhir+json"
DETAIL_CHARS = 1000  # of a server's OperationOutcome text in an error message
# Methods retried on a transient failure; a POST (a transaction, an operation) is not.
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class ForeignLinkError(PagingError):
    """A search ``next`` link points to another origin than the server's."""


class FhirClient:
    """Talks to one FHIR R4 server.

    Args:
        base_url: the server's base, e.g. ``https://ehr.example.org/fhir/R4``.
        auth: a ``requests`` auth object (see :mod:`fhir_assets.fhir.auth`), or ``None``.
        timeout: seconds to wait for connect and for each read.
        retry: how transient failures are retried.
        headers: extra headers sent on every request (vendor profiles use this).
        rate_limit: a request-rate limit, shared with other clients of the same server.
        pool_size: pooled connections kept per host (the number of threads that use it).
        limits: bounds and deadlines on what the server sends (:class:`Limits`).
        now: monotonic clock for deadlines (injected by tests).

    Attributes:
        stats: retries and seconds waited, for metadata.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: requests.auth.AuthBase | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        rate_limit: RateLimit | None = None,
        pool_size: int = 10,
        limits: Limits | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = require_https(base_url, "FHIR base URL").rstrip("/") + "/"
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.rate_limit = rate_limit
        self.stats = RequestStats()
        self.limits = limits or Limits()
        self.now = now
        self.profile: ServerProfile | None = None  # set once by settings.build_client
        self.session = new_session(self.limits)
        self.session.auth = auth
        self.session.headers.update({"Accept": FHIR_JSON, **(headers or {})})
        self.pool_size = 0
        self.widen_pool(pool_size)

    def __repr__(self) -> str:
        return f"FhirClient({self.base_url!r})"

    def use_rate_limit(self, rate_limit: RateLimit | None) -> None:
        """Take a permit from ``rate_limit`` before every request from now on."""
        self.rate_limit = rate_limit
        for adapter in self.session.adapters.values():
            if isinstance(adapter, RateLimitedAdapter):
                adapter.rate_limit = rate_limit

    def widen_pool(self, size: int) -> None:
        """Pool at least ``size`` connections (a Bulk Data export downloads files in parallel
        through this same session)."""
        if size <= self.pool_size:
            return
        self.pool_size = size
        # The transport never retries: every retry is RetryPolicy.run's (retry.py), so searches,
        # Bulk Data and writes that share this session have one policy, not two stacked.
        adapter = RateLimitedAdapter(
            self.rate_limit, max_retries=0, pool_connections=size, pool_maxsize=size
        )
        for prefix in ("http://", "https://"):
            old = self.session.adapters.get(prefix)
            self.session.mount(prefix, adapter)
            if old is not None and old is not adapter:
                old.close()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()

    def url(self, path: str) -> str:
        """Resolve a relative path (``Patient``, ``metadata``) against the base URL."""
        return urljoin(self.base_url, path.lstrip("/"))

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> dict[str, Any]:
        """Send a request and return the decoded JSON body.

        Raises:
            TransientRequestError: 408/429/5xx after retries, or the connection failed.
            RequestError: any other 4xx/5xx, with the OperationOutcome's issues.
            ResponseFormatError: a success status whose body is not JSON (an HTML page, say).
        """
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        kwargs.setdefault("timeout", self.timeout)
        # a single read may be redirected to storage elsewhere (without the token); searches,
        # writes and everything else stay on the server's origin (fhir_assets.fhir.http)
        kwargs.setdefault("redirects", "reads" if method == "GET" else "same-origin")
        if method not in IDEMPOTENT:
            return self._send(method, url, **kwargs)  # a POST is retried only by its caller
        # GET: a body that broke off or is not JSON (an HTML error page) is worth another try
        retry_on = (TransientRequestError, ResponseFormatError) if method == "GET" else None
        return self.retry.run(
            lambda: self._send(method, url, **kwargs),
            retry_on=retry_on or (TransientRequestError,),
            before_sleep=lambda _exc, wait: self.stats.add_retry(wait),
            jitter=True,
        )

    def _send(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        require_https(url, f"{method} target")
        try:
            response = self.session.request(method, url, **kwargs)
        except (
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            raise IncompleteBodyError(
                f"{method} {redact(url)}: the response body broke off ({type(exc).__name__})",
                url=redact(url),
            ) from exc
        except requests.RequestException as exc:
            raise TransientRequestError(
                f"{method} {redact(url)} failed: {type(exc).__name__}", url=redact(url)
            ) from exc
        return decode(response)

    def get(self, path_or_url: str, params: Params | None = None, **kwargs: Any) -> dict[str, Any]:
        """GET a path or absolute URL and return its JSON."""
        return self.request("GET", path_or_url, params=params, **kwargs)

    def capabilities(self) -> dict[str, Any]:
        """The server's CapabilityStatement (``GET [base]/metadata``)."""
        return self.get("metadata")

    def search_pages(self, resource_type: str, params: Params | None = None) -> Iterator[Page]:
        """Search a type and yield its pages, following ``Bundle.link[next]``.

        Bounded (:class:`Limits`): pages, a deadline, repeated links and repeated pages.

        Raises:
            PagingError: the server repeated a next link or a whole page of ids, sent more pages
                than its ``Bundle.total`` or ``FHIR_MAX_PAGES_PER_SEARCH`` allow, or the search
                outlived ``FHIR_SEARCH_DEADLINE_S``.
        """
        bound = PageBound(resource_type, self.limits, self.now())
        bundle = self.get(resource_type, params, redirects="same-origin")
        while True:
            page = parse_searchset(bundle, resource_type)
            bound.check(page)
            yield page
            if page.next_url is None:
                return
            bundle = self.get(self._own_link(resource_type, page.next_url), redirects="same-origin")
            bound.tick(self.now())

    def _own_link(self, resource_type: str, url: str) -> str:
        """``url`` if it is on this server's origin. A server paging across origins is
        misconfigured or hostile; its pages are refused, never landed as this server's data."""
        url = urljoin(self.base_url, url)
        if origin(url) != origin(self.base_url):
            raise ForeignLinkError(
                f"{resource_type} search: the next link points to {show_origin(url)}, not to the "
                f"server's origin {show_origin(self.base_url)}; refusing to follow it"
            )
        return url

    def search(self, resource_type: str, params: Params | None = None) -> Iterator[dict[str, Any]]:
        """Yield every resource of ``resource_type`` matching ``params``, across all pages."""
        for page in self.search_pages(resource_type, params):
            yield from page.resources

    def transaction(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """POST a transaction or batch Bundle to the base URL and return the response Bundle."""
        return self.request(
            "POST",
            self.base_url,
            data=orjson.dumps(bundle),
            headers={"Content-Type": FHIR_JSON},
        )


def sent_token(response: requests.Response) -> tuple[str, ...]:
    """The bearer token the request of ``response`` carried (none: empty), to scrub from echoes."""
    request = getattr(response, "request", None)
    header = request.headers.get("Authorization", "") if request is not None else ""
    scheme, _, token = header.partition(" ")
    return (token.strip(),) if scheme.lower() == "bearer" and token.strip() else ()


def decode(response: requests.Response) -> dict[str, Any]:
    """Turn a response into JSON or into the right :class:`RequestError`."""
    url = redact(response.url or "")
    content_type = response.headers.get("Content-Type", "")
    try:
        body = orjson.loads(response.content) if response.content else {}
    except orjson.JSONDecodeError:
        body = None
    status = response.status_code
    if status >= 400:
        # a server (or gateway) may echo the request: no JWT, no Authorization value and not the
        # token we sent (opaque tokens have no recognisable shape) passes
        sent = sent_token(response)
        issues = tuple(scrub(issue, sent) for issue in outcome_issues(body))
        kind = TransientRequestError if status in TRANSIENT_STATUSES else RequestError
        detail = "; ".join(issues) or scrub(response.reason or "no OperationOutcome", sent)
        if len(detail) > DETAIL_CHARS:  # the server's text, of any length: all in ``issues``
            whole = f" ({len(issues)} issues in all)" if issues else ""
            detail = f"{detail[:DETAIL_CHARS]}...{whole}"
        error = kind(
            f"{response.request.method} {url} answered HTTP {status}: {detail}",
            status=status,
            url=url,
            issues=issues,
        )
        if kind is TransientRequestError:
            # RetryPolicy.run waits what the server asks (capped), else its own backoff
            error.wait_s = retry_after(response.headers)  # type: ignore[attr-defined]
        raise error
    if not isinstance(body, dict):
        raise ResponseFormatError(
            f"{url} answered HTTP {status} with {content_type or 'no content type'}, not FHIR JSON",
            status=status,
            url=url,
        )
    return body
