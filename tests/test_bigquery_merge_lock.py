"""BigQuery merges from one machine take turns: BigQuery cancels overlapping transactions on one table.

No BigQuery is needed: the lock is a file lock shared by the runner's worker processes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner.bigquery import BigQueryWarehouse, GcpConfig

ROOT = Path(__file__).resolve().parent.parent


def _warehouse(dataset: str) -> BigQueryWarehouse:
    config = GcpConfig(project="proj", location="US", dataset=dataset, bucket=None, credentials_file=None)
    return BigQueryWarehouse(config=config, landing_dataset=dataset + "_landing", landing_expiry_days=7)


def _other_process_takes_the_lock(dataset: str) -> subprocess.Popen:
    code = textwrap.dedent(
        f"""
        from tests.test_bigquery_merge_lock import _warehouse
        with _warehouse({dataset!r}).merge_lock():
            print("merged", flush=True)
        """
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)


def test_a_second_merge_waits_for_the_first() -> None:
    with _warehouse("nyc_taxi").merge_lock():
        other = _other_process_takes_the_lock("nyc_taxi")
        with pytest.raises(subprocess.TimeoutExpired):
            other.wait(timeout=2)  # blocked while this merge holds the lock
    out, _ = other.communicate(timeout=30)
    assert other.returncode == 0 and out == "merged\n"


def test_merges_into_another_dataset_do_not_wait() -> None:
    with _warehouse("nyc_taxi").merge_lock():
        other = _other_process_takes_the_lock("nyc_taxi_dev")
        out, _ = other.communicate(timeout=30)
    assert other.returncode == 0 and out == "merged\n"
