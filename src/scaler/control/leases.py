"""Holding a group's lease while the group is worked on: taken, renewed, fenced, released.

Called by the controller around each group's decision. A lease is taken for `ttl` at the
tick's time and renewed in a background thread every `renew_every` (real seconds, added to the
tick's time), so a slow but live tick never loses its group to the next tick. A tick that
stalls (a frozen process, a call that hangs) stops renewing; after `ttl` another tick may take
the group, and the stalled tick's fenced writes then fail: it can neither act nor record.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

from scaler.control.store import Lease, StateStore
from scaler.errors import ScalerError
from scaler.logs import get_logger

__all__ = ["DEFAULT_LEASE_TTL", "DEFAULT_RENEW_EVERY", "HeldLease", "hold_lease"]

log = get_logger(__name__)

#: Longer than any group's work takes (every AWS call is bounded: 5 s to connect, 30 s to
#: read, 20 s of retries); a holder that died frees the group after this.
DEFAULT_LEASE_TTL = timedelta(minutes=5)
#: Renewed this often while held, so a live holder's lease is never older than this.
DEFAULT_RENEW_EVERY = timedelta(seconds=20)


class HeldLease:
    """The lease a block holds (None: another tick holds the group), kept fresh meanwhile."""

    def __init__(self, lease: Lease | None) -> None:
        self._lease = lease
        self.lost = False

    @property
    def lease(self) -> Lease | None:
        """The lease as last renewed; the fence for this group's writes."""
        return self._lease

    def _renewed(self, lease: Lease | None) -> None:
        if lease is None:
            self.lost = True
        else:
            self._lease = lease


@contextlib.contextmanager
def hold_lease(
    store: StateStore,
    group: str,
    owner: str,
    *,
    now: datetime,
    ttl: timedelta = DEFAULT_LEASE_TTL,
    renew_every: timedelta = DEFAULT_RENEW_EVERY,
) -> Iterator[HeldLease]:
    """Take the group's lease for a block, renewing it until the block ends, then release it."""
    held = HeldLease(store.acquire_lease(group, owner, now=now, ttl=ttl))
    if held.lease is None:
        yield held
        return
    started = time.monotonic()
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(renew_every.total_seconds()):
            current = held.lease
            if current is None:
                return
            at = now + timedelta(seconds=time.monotonic() - started)
            try:
                held._renewed(store.renew_lease(current, now=at, ttl=ttl))
            except ScalerError as exc:  # the next renewal may pass; the fence still guards
                log.warning("lease_renewal_failed", group=group, error=str(exc))
            if held.lost:
                log.error("lease_lost", group=group, owner=owner)
                return

    renewer = threading.Thread(target=renew, name=f"lease-{group}", daemon=True)
    renewer.start()
    try:
        yield held
    finally:
        stop.set()
        renewer.join()
        if not held.lost:
            store.release_lease(group, owner)
