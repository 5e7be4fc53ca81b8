"""The figures of the audit dashboard, from flat audit rows (guardrails.audit.rows), pure.

Actions over time, top categories, calls per model / principal / route, the comparison of every
experiment seen (guardrails.experiment_report), all in one pass over the rows.
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from guardrails.experiment_report import ACTIONS, build_report


def bucket_of(ts: float, width: str) -> str:
    d = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    return d.strftime("%Y-%m-%d %H:00") if width == "hour" else d.strftime("%Y-%m-%d")


def summarise(rows: Iterable[dict[str, Any]], *, top: int = 10, groups_top: int = 20) -> dict[str, Any]:
    """Totals, actions per time bucket (hours when the span is under two days, else days), top
    categories, per model / principal / route action counts, and experiment reports."""
    all_rows = list(rows)
    total = len(all_rows)
    actions: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    groups: dict[str, dict[str, Counter[str]]] = {g: defaultdict(Counter) for g in ("model", "principal", "route")}
    experiments: set[str] = set()
    tss = [float(r["ts"]) for r in all_rows]
    width = "hour" if tss and max(tss) - min(tss) < 2 * 86400 else "day"
    series: dict[str, Counter[str]] = defaultdict(Counter)
    for r in all_rows:
        a = r["final"]
        actions[a] += 1
        series[bucket_of(float(r["ts"]), width)][a] += 1
        for c in r.get("categories") or []:
            categories[c] += 1
        for g, col in (("model", "model"), ("principal", "principal_id"), ("route", "route")):
            groups[g][str(r.get(col) or "-")][a] += 1
        if r.get("experiment"):
            experiments.add(r["experiment"])

    def table(g: str) -> list[dict[str, Any]]:
        items = sorted(groups[g].items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:groups_top]
        return [{"key": k, "calls": sum(v.values()), "actions": {a: v.get(a, 0) for a in ACTIONS}} for k, v in items]

    return {
        "total": total,
        "actions": {a: actions.get(a, 0) for a in ACTIONS},
        "width": width,
        "series": [{"bucket": b, "actions": {a: series[b].get(a, 0) for a in ACTIONS}} for b in sorted(series)],
        "top_categories": sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))[:top],
        "by_model": table("model"), "by_principal": table("principal"), "by_route": table("route"),
        "experiments": [build_report(name, all_rows) for name in sorted(experiments)],
    }
