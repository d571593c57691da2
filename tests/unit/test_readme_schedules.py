"""The README says which prefect.yaml lines hold the schedules' time zone: keep it true."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_the_six_schedule_time_zones_the_readme_names() -> None:
    deployments = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    zones = {d["name"]: [s["timezone"] for s in d.get("schedules") or []] for d in deployments}
    scheduled = {name: found for name, found in zones.items() if found}
    assert scheduled == {
        name: ["Asia/Shanghai"]
        for name in ("nightly", "pull", "reactivation", "daily-report", "segments", "review")
    }
    assert (REPO / "prefect.yaml").read_text().count("timezone: Asia/Shanghai") == 6
    readme = " ".join((REPO / "README.md").read_text().split())
    assert (
        "change the six `timezone: Asia/Shanghai` lines under `schedules:` in `prefect.yaml`"
        " (nightly, pull, reactivation, daily-report, segments, review)" in readme
    )
