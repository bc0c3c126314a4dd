"""How an asset whose work is mostly I/O (the registry, the BentoML store, logs) retries.

A registry or store that hiccups for a second should not fail a nightly run or a
drift retrain: three more tries, 2 s then 4 s then 8 s apart, jittered so runs that
failed together do not retry together. Training has its own policy (it resumes from
checkpoints); the deployment does not retry (each attempt is audited, and a refused
bento stays refused).
"""

import dagster as dg

IO_RETRY = dg.RetryPolicy(
    max_retries=3, delay=2.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
