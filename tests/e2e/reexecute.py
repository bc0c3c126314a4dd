"""Re-executes the newest run's trained_policy step, as the UI's re-execute button would.

Run monitoring marks a run whose process vanished as failed; this does the same first.
"""

import sys

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository

if __name__ == "__main__":
    repo = ReconstructableRepository.for_module(
        "tradeops_assets.definitions", "defs", working_directory=sys.argv[1]
    )
    job = repo.get_reconstructable_job("__ASSET_JOB")
    with dg.DagsterInstance.get() as instance:
        parent = instance.get_runs(limit=1)[0]
        if not parent.is_finished:
            instance.report_run_failed(parent)
        result = dg.execute_job(
            job,
            instance=instance,
            run_config=parent.run_config,
            reexecution_options=dg.ReexecutionOptions(parent.run_id, ["trained_policy"]),
        )
        sys.exit(0 if result.success else 1)
