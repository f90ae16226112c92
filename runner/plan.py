"""A run's plan, from the ledger first and without downloading: what will happen to each month.

load     never loaded
retry    the last attempt failed or was interrupted, and no load succeeded
reload   loaded, but the source's file differs (checksum, or size for a remote file), or --force
check    loaded; the remote file has the same size but no cached copy to compare: the run
         downloads it (conditionally) and its checksum decides
skip     loaded from an identical file (checksum of a local or cached copy)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.project import Month, TaxiSpec
from runner.source import Probe, probe


@dataclass(frozen=True)
class MonthPlan:
    spec: TaxiSpec
    month: Month
    action: str  # load | retry | reload | check | skip
    reason: str
    rows_loaded: int | None = None
    load_id: str | None = None
    last_state: str | None = None  # of the month's latest attempt: running, succeeded, failed
    checksum: str | None = None  # the source file's sha256, when the plan read it

    def as_dict(self) -> dict[str, Any]:
        return {
            "taxi": self.spec.name,
            "month": str(self.month),
            "action": self.action,
            "reason": self.reason,
            "rows_loaded": self.rows_loaded,
        }


def holds_file(success: dict[str, Any] | None, sha256: str | None, force: bool) -> bool:
    """The month's current load came from these very bytes, so there is nothing to load.

    The runner asks before it downloads (the plan) and before it lands (the fetched file); the
    merge asks again under the month lock, and its answer is the one that counts
    (macros/materializations/tripdata_month.sql: a load of the same file ends `unchanged`).
    """
    return not force and success is not None and sha256 is not None and success["checksum"] == sha256


def decide(
    state: dict[str, Any] | None, success: dict[str, Any] | None, found: Probe, force: bool
) -> tuple[str, str]:
    """The action for one month, and why, from its ledger rows and the source's probe."""
    if success is None:
        if state is not None and state["state"] in ("failed", "running"):
            what = "was interrupted" if state["state"] == "running" else "failed"
            first_line = (state.get("error") or "").splitlines()[:1]
            return "retry", f"the last attempt {what}" + (f": {first_line[0][:100]}" if first_line else "")
        return (
            ("load", "not loaded")
            if not found.missing
            else ("load", "not loaded; the source has no file yet")
        )
    if force:
        return "reload", "--force"
    if found.missing:
        return "skip", "loaded; the source no longer has the file"
    if holds_file(success, found.sha256, force):
        return "skip", "loaded from an identical file"
    if found.sha256 is not None:
        return "reload", "the file changed (checksum)"
    if found.size is not None and success.get("bytes") is not None and found.size != success["bytes"]:
        return "reload", f"the file changed (size {success['bytes']:,} -> {found.size:,} bytes)"
    if found.error:
        return "check", f"loaded; the source could not be checked ({found.error}): the download decides"
    return "check", "loaded, same size: the downloaded file's checksum decides"


def plan_months(
    plan: list[tuple[TaxiSpec, Month]],
    month_states: list[dict[str, Any]],
    current_loads: list[dict[str, Any]],
    source: str | None,
    cache_dir: Path,
    force: bool,
) -> list[MonthPlan]:
    """Each month's action, from the ledger's month states and current loads, and the source."""
    states = {(s["taxi"], str(s["file_month"])[:7]): s for s in month_states}
    currents = {(c["taxi"], str(c["file_month"])[:7]): c for c in current_loads}
    decided = []
    for spec, month in plan:
        state = states.get((spec.name, str(month)))
        success = currents.get((spec.name, str(month)))
        found = probe(spec.name, month, spec.filename(month), source=source, cache_dir=cache_dir)
        action, reason = decide(state, success, found, force)
        decided.append(
            MonthPlan(
                spec,
                month,
                action,
                reason,
                rows_loaded=success["rows_loaded"] if success else None,
                load_id=success["load_id"] if success else None,
                last_state=state["state"] if state else None,
                checksum=found.sha256,
            )
        )
    return decided
