"""The scheduler's tick: everything a run does happens in ``run_tick``, one tick at a time per run.

A run's state is only in the database. A tick locks the Run row (PostgreSQL: ``SELECT ... FOR UPDATE``; SQLite
serialises writers anyway) and, in one transaction:

0. puts back to pending any contact marked dialing that has no dial in flight (cannot happen with the claim
   below, which commits claim, session and dial together; kept as a guard against hand edits);
1. reconciles the dials in flight from their sessions' statuses (a session that reached a terminal status, or a
   dial past ``campaign.max_call_seconds``, which counts as failed), updates the counters and schedules retries;
   dials whose hand-off to the dialer never completed (a worker killed after the commit) are handed off again,
   with the same session id;
2. evaluates the circuit breaker and pauses the run when it trips;
3. dials due contacts while calls in flight < ``max_concurrent_calls`` and dials of the last 60 s <
   ``max_calls_per_minute``: do-not-call numbers are skipped, contacts outside their calling window are postponed
   to its next opening; each contact is claimed with a conditional UPDATE (pending -> dialing), and its
   CallSession and Dial row are created in the same transaction, before any request leaves;
4. completes the run when no contact is waiting or being dialed.

After the commit it hands the new dials to the dialer backend (network I/O never happens under the lock) and
says when the next tick is due; the Celery task (campaigns/tasks.py) queues it.
"""

from __future__ import annotations

from campaigns.scheduler.state import TickResult
from campaigns.scheduler.tick import run_tick
from campaigns.scheduler.windows import contact_zone, window_is_open, window_next_opening

__all__ = ["TickResult", "contact_zone", "run_tick", "window_is_open", "window_next_opening"]
