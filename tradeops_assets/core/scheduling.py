"""CPU scheduling of the serving processes: the front door and the bento share a core.

Under Linux's default policy a process woken by a socket write preempts the one
that wrote: the door forwards one request, the bento runs it at once, answers,
and the door runs again, one request per switch. Every switch between the two
processes refills caches: through the door, /predict ran at 69-84% of the bento's
own throughput. Under ``SCHED_BATCH`` a woken process does not preempt; each
drains what is ready before the other runs, several requests per switch: 89-109%,
the same processes switched between the two policies in turn (issue 13). Any
process may choose it for itself, with no privilege, and every process and thread
it starts afterwards inherits it.
"""

import os

POLICIES = ("batch", "normal")
"""What a serving process may run under (``settings.scheduling_policy`` reads which)."""


def apply(policy: str) -> str:
    """Puts this process (and what it starts from now on) under ``policy``; returns it.
    Call it before starting threads: a policy is per thread, inherited only by threads
    and processes started after it is set."""
    if policy not in POLICIES:
        raise ValueError(f"scheduling policy {policy!r}: expected one of {POLICIES}")
    if policy == "batch":
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    return policy


def policy_of(pid: int) -> str:
    """``batch``, ``normal`` or another policy's number, of ``pid``'s main thread."""
    names = {os.SCHED_BATCH: "batch", os.SCHED_OTHER: "normal"}
    policy = os.sched_getscheduler(pid)
    return names.get(policy, str(policy))
