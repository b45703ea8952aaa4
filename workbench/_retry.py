"""The one retry policy: which failures are retried, how many times, and the waits between.

Owns calling a function again after a failure (tenacity underneath): ``@workbench.step``'s
``retries``/``backoff_s``, a YAML step's ``retries``/``backoff``, and the store's commit while
another process holds the file locked. It does not own what a caller records or logs about a
retry; that is the ``on_retry`` callback's.

The first attempt is a plain call: tenacity is imported, and its Retrying built, only once a
call has failed with a failure the policy retries, so ``import workbench`` and a step that
succeeds pay nothing for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["OnRetry", "RetryPolicy"]

T = TypeVar("T")

#: Called before each wait: the failure, the number of the retry about to run (1 for the
#: first) and the seconds it waits before it.
OnRetry = Callable[[BaseException, int, float], None]


def _never(exc: BaseException) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Up to ``retries`` more attempts after a failure ``retry_if`` accepts, waiting
    ``backoff_s`` before the first retry and twice the previous wait before each next one.
    The last failure is raised as it is; failures ``retry_if`` refuses are raised at once."""

    retries: int = 0
    retry_if: Callable[[BaseException], bool] = _never
    backoff_s: float = 0.0

    def call(self, fn: Callable[[], T], on_retry: OnRetry | None = None) -> T:
        """``fn()``, retried as the policy says."""
        try:
            return fn()
        except BaseException as exc:
            if not self._retries(exc):
                raise
            failed: BaseException | None = exc
        for attempt in self._tenacity(on_retry, asynchronous=False):
            with attempt:
                if failed is not None:
                    # The first attempt already ran above: hand its failure to tenacity as
                    # attempt 1, so every wait and the limit are counted by tenacity alone.
                    error, failed = failed, None
                    raise error
                return fn()
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    async def acall(self, fn: Callable[[], Awaitable[T]], on_retry: OnRetry | None = None) -> T:
        """``await fn()``, retried as the policy says (waiting with ``asyncio.sleep``)."""
        try:
            return await fn()
        except BaseException as exc:
            if not self._retries(exc):
                raise
            failed: BaseException | None = exc
        async for attempt in self._tenacity(on_retry, asynchronous=True):
            with attempt:
                if failed is not None:
                    error, failed = failed, None
                    raise error
                return await fn()
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    def _retries(self, exc: BaseException) -> bool:
        return self.retries > 0 and self.retry_if(exc)

    def _tenacity(self, on_retry: OnRetry | None, *, asynchronous: bool) -> Any:
        import tenacity

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None:
                error = state.outcome.exception()
                wait = state.next_action.sleep if state.next_action is not None else 0.0
                if error is not None:
                    on_retry(error, state.attempt_number, wait)

        kind = tenacity.AsyncRetrying if asynchronous else tenacity.Retrying
        return kind(
            stop=tenacity.stop_after_attempt(self.retries + 1),
            wait=tenacity.wait_exponential(multiplier=self.backoff_s, exp_base=2),
            retry=tenacity.retry_if_exception(self.retry_if),
            before_sleep=before_sleep,
            reraise=True,
        )
