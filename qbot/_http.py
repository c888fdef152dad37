"""The HTTP layer under `QiscusClient`: one pooled session, error mapping, retries, logging."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import structlog
from multidict import CIMultiDict, CIMultiDictProxy

from qbot._json import dumps, loads
from qbot._logcache import LineLogger
from qbot._retry import RetryPolicy, parse_retry_after
from qbot.errors import (
    QiscusAPIError,
    QiscusError,
    QiscusNetworkError,
    QiscusRateLimited,
    QiscusServerError,
    api_error_for,
)

BodyFactory = Callable[[], aiohttp.FormData]
_MIN_TRY = 0.05
"""Seconds of budget a retry must have left to be made."""
T = TypeVar("T")
_request_log = LineLogger(__name__)
"""The ``qiscus.request`` line of every try (debug: a no-op at the default info level).

Named as ``structlog.get_logger()`` called here named it (a stdlib logger factory's name)."""


class _Retryable(Exception):
    """A failed try worth repeating; carries the error to raise if the retries run out."""

    def __init__(self, error: QiscusError, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def error_message(body: Any, text: str) -> str:
    """The server's words: ``error.message``, ``error.errors``, ``error.detailed_messages``.

    Qiscus often repeats one message in all three places: each distinct text is said once.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return error
    if not isinstance(error, dict):
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return str(body["message"])
        return text.strip()[:500] or "(empty body)"
    parts: list[str] = []
    said: set[str] = set()

    def say(part: str) -> None:
        if part not in said:
            said.add(part)
            parts.append(part)

    if error.get("message"):
        say(str(error["message"]))
    errors = error.get("errors")
    if isinstance(errors, dict):
        for field, problems in errors.items():
            items = [str(p) for p in (problems if isinstance(problems, list) else [problems])]
            fresh = [item for item in items if item not in said]
            said.update(fresh)
            if fresh:
                parts.append(f"{field}: {', '.join(fresh)}")
    elif errors:
        say(str(errors))
    details = error.get("detailed_messages")
    for detail in details if isinstance(details, list) else [details] if details else []:
        say(str(detail))
    return "; ".join(parts) or text.strip()[:500] or "(empty body)"


def network_reason(error: aiohttp.ClientError) -> str:
    """What went wrong on the wire, in words (aiohttp's own text says ``ssl:default``)."""
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve host {error.host!r}"
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return f"the TLS certificate of {error.host}:{error.port} is not trusted"
    if isinstance(error, aiohttp.ClientConnectorError):
        cause = error.os_error
        reason = os.strerror(cause.errno) if cause.errno else (cause.strerror or str(cause))
        return f"cannot connect to {error.host}:{error.port}: {reason.lower()}"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection before answering"
    return str(error) or type(error).__name__


def decode(status: int, endpoint: str, raw: bytes, retry_after: float | None) -> Any:
    """Turn an answer into its ``results``, or raise the matching `QiscusAPIError`.

    Qiscus sometimes answers 200 with a plain-text error or with ``"status": 4xx`` in the JSON
    body, so a non-JSON body or an error status inside the body is an error too.
    """
    try:
        body: Any = loads(raw) if raw.strip() else None
    except ValueError:
        body = None
    inner = body.get("status") if isinstance(body, dict) else None
    failed_inside = isinstance(inner, int) and inner >= 400
    if status < 400 and isinstance(body, dict) and not failed_inside:
        return body.get("results", body)
    text = raw.decode(errors="replace")
    if status >= 400:
        raise api_error_for(status, endpoint, error_message(body, text), body or text, retry_after)
    if not isinstance(body, dict):
        raise api_error_for(
            status, endpoint, f"expected a JSON object, got {text.strip()[:200]!r}", body or text
        )
    raise api_error_for(int(body["status"]), endpoint, error_message(body, text), body, retry_after)


class Transport:
    """Sends requests for one client: lazily created pooled session, retries, structured logs."""

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str],
        timeout: float,
        retry: RetryPolicy,
        session: aiohttp.ClientSession | None,
    ) -> None:
        self.base_url = base_url
        # aiohttp turns a plain dict of headers into a CIMultiDict on every request (about half
        # of its header work); a read-only one made here is taken as it is.
        self._headers = CIMultiDictProxy(CIMultiDict(headers))
        self._json_headers = CIMultiDictProxy(
            CIMultiDict({**headers, "Content-Type": "application/json"})
        )
        self._timeout = timeout
        self._first_timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry
        self._session = session
        self._owns_session = session is None

    def session(self) -> aiohttp.ClientSession:
        """The pooled session, created on first use inside the running event loop."""
        if self._session is None or (self._owns_session and self._session.closed):
            connector = aiohttp.TCPConnector(limit=100, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector)
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        """Close the session if this transport created it."""
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None if self._owns_session else self._session

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, str]] | None = None,
        json_body: Mapping[str, Any] | None = None,
        form: BodyFactory | None = None,
        recover: Callable[[], Awaitable[Any]] | None = None,
    ) -> Awaitable[Any]:
        """Call an API endpoint with auth headers; awaited, it returns the answer's ``results``.

        A plain function returning the retry loop's coroutine (not a coroutine awaiting it): the
        first try then runs two frames under the endpoint method, not four.

        Args:
            recover: for a call that must not take effect twice (a post): asked before a retry
                of a try whose outcome is unknown (Qiscus may have done it: a 500, 502 or 504,
                or no answer at all, and then at least ``timeout`` seconds after that try); what
                it returns other than None is the call's result, and the call is not made again.
        """

        async def once(budget: float) -> Any:
            if json_body is not None:
                data: Any = dumps(json_body)
                headers = self._json_headers
            else:
                data = form() if form is not None else None
                headers = self._headers
            async with self.session().request(
                method,
                self.base_url + path,
                params=params,
                data=data,
                headers=headers,
                timeout=self._client_timeout(budget),
            ) as resp:
                raw = await resp.read()
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                return decode(resp.status, path, raw, retry_after)

        return self._with_retry(method, path, once, recover)

    async def download(self, url: str) -> bytes:
        """GET a file (an export's ``download_url``) without the API's auth headers.

        The URL usually points at a storage host, so the secret key must not travel with it.
        """

        async def once(budget: float) -> bytes:
            async with self.session().get(url, timeout=self._client_timeout(budget)) as resp:
                data = await resp.read()
                if resp.status >= 400:
                    text = data.decode(errors="replace")
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    raise api_error_for(resp.status, url, text.strip()[:500], text, retry_after)
                return data

        return await self._with_retry("GET", url, once)

    async def _recover(self, endpoint: str, recover: Callable[[], Awaitable[T | None]]) -> T | None:
        """What ``recover`` found of a try that may have taken effect (None: not found, or the
        look-up failed: the call is made again)."""
        try:
            found = await recover()
        except QiscusError as e:
            structlog.get_logger().warning("qiscus.lookup_failed", endpoint=endpoint, error=str(e))
            return None
        if found is not None:
            structlog.get_logger().info("qiscus.found_after_unknown_outcome", endpoint=endpoint)
        return found

    def _client_timeout(self, budget: float) -> aiohttp.ClientTimeout:
        # The first try's budget is the configured timeout: its ClientTimeout is made once.
        if budget == self._timeout:
            return self._first_timeout
        return aiohttp.ClientTimeout(total=budget)

    async def _with_retry(
        self,
        method: str,
        endpoint: str,
        once: Callable[[float], Awaitable[T]],
        recover: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        policy = self._retry
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        unsure = False  # whether the last try may have taken effect
        unanswered = False  # ... and got no answer at all (it may still be under way)
        previous: _Retryable | None = None  # what made us retry
        while True:
            attempt += 1
            begun = loop.time()
            budget = min(self._timeout, max(0.001, policy.max_total_time - (begun - started)))
            # One attempt, inline (no coroutine layer of its own): the common path is one try.
            status: int | str = "error"
            try:
                result = await once(budget)
                status = 200
                return result
            except (QiscusServerError, QiscusRateLimited) as e:
                status = e.status
                failure = _Retryable(e, e.retry_after)
                # A 503 says the call was not taken; a 500, 502, 504 may come after it was.
                unsure = isinstance(e, QiscusServerError) and e.status != 503
                unanswered = False
            except QiscusAPIError as e:
                status = e.status
                raise
            except aiohttp.InvalidURL as e:
                raise QiscusNetworkError(
                    f"invalid Qiscus URL {str(e)!r}: check qiscus.base_url", endpoint=endpoint
                ) from e
            except TimeoutError as e:
                status = "timeout"
                if previous is not None and budget < self._timeout:
                    # Cut short by the time budget, not by Qiscus: the error that made us retry
                    # is the one to tell (on a loaded machine a try can outlast the last one).
                    raise previous.error from previous.error.__cause__
                error = QiscusNetworkError(
                    f"no answer from Qiscus within {budget:g}s on {endpoint}", endpoint=endpoint
                )
                error.__cause__ = e
                failure = _Retryable(error, None)
                unsure = unanswered = True
            except aiohttp.ClientError as e:
                status = type(e).__name__
                error = QiscusNetworkError(
                    f"could not reach Qiscus at {self.base_url} ({endpoint}): {network_reason(e)}",
                    endpoint=endpoint,
                )
                error.__cause__ = e
                failure = _Retryable(error, None)
                # Refused before connecting: nothing was sent. Dropped later: it may have been.
                unsure = unanswered = not isinstance(e, aiohttp.ClientConnectorError)
            finally:
                line = _request_log.at(logging.DEBUG)
                if line is not None:
                    line.debug(
                        "qiscus.request",
                        method=method,
                        endpoint=endpoint,
                        status=status,
                        duration_ms=round((loop.time() - begun) * 1000, 1),
                    )
            elapsed = loop.time() - started
            wait = failure.retry_after
            if wait is None:
                wait = policy.backoff(attempt)
            if unanswered and recover is not None:
                # Give a slow answer one more timeout to land before looking for it.
                wait = max(wait, self._timeout)
            # A try needs time to be worth making: one squeezed into the last milliseconds of the
            # budget would only time out and hide the error that made us retry.
            left = policy.max_total_time - (elapsed + wait)
            if attempt >= policy.max_attempts or left < min(_MIN_TRY, self._timeout):
                raise failure.error from failure.error.__cause__
            # A fresh logger per event: a cached one would pin whatever config was active.
            structlog.get_logger().warning(
                "qiscus.retry",
                method=method,
                endpoint=endpoint,
                attempt=attempt,
                delay=round(wait, 3),
                error=str(failure.error),
            )
            previous = failure
            await asyncio.sleep(wait)
            if unsure and recover is not None:
                found = await self._recover(endpoint, recover)
                if found is not None:
                    return found
                if policy.max_total_time - (loop.time() - started) < min(_MIN_TRY, self._timeout):
                    raise failure.error from failure.error.__cause__  # the look-up took it all
