"""The comparison of an experiment's variants, from flat audit rows (guardrails.audit.rows), pure.

Per variant: calls, final actions, block / flag / redact rates per category (share of calls with at
least one finding of that category given that action), output refusals, upstream errors, latency
p50/p95 (total and upstream), tokens. Every rate carries a Wilson 95 % interval, and each rate is
compared across variants with a chi-square test of homogeneity (k x 2; for two variants this is the
two-proportion z test, z^2 = chi^2): its p-value says how likely a difference this large is when the
variants do not differ.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Z95 = 1.959963984540054
ACTIONS = ("allow", "flag", "redact", "route", "block")
RATE_ACTIONS = ("block", "flag", "redact")


# ------------------------------------------------------------------------------------------ statistics


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (0..1); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _gammq(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (series below a+1, continued fraction above)."""
    if x <= 0:
        return 1.0
    gln = math.lgamma(a)
    if x < a + 1:
        ap, total, delta = a, 1.0 / a, 1.0 / a
        for _ in range(1000):
            ap += 1
            delta *= x / ap
            total += delta
            if abs(delta) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - gln))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - gln) * h)


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X ~ chi-square with df degrees of freedom."""
    if df <= 0:
        return 1.0
    return _gammq(df / 2.0, x / 2.0)


def homogeneity(counts: list[tuple[int, int]]) -> dict[str, Any] | None:
    """Chi-square test that every (k successes, n trials) shares one rate. None when untestable (fewer
    than two variants with calls, or no variation at all). For two variants also the z statistic."""
    rows = [(k, n) for k, n in counts if n > 0]
    if len(rows) < 2:
        return None
    K = sum(k for k, _ in rows)
    N = sum(n for _, n in rows)
    if K == 0 or K == N:
        return None
    p = K / N
    chi2 = 0.0
    for k, n in rows:
        e1, e0 = n * p, n * (1 - p)
        chi2 += (k - e1) ** 2 / e1 + ((n - k) - e0) ** 2 / e0
    out: dict[str, Any] = {"test": "chi-square", "chi2": chi2, "df": len(rows) - 1, "p": chi2_sf(chi2, len(rows) - 1)}
    if len(rows) == 2:
        (k1, n1), (k2, n2) = rows
        se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
        out["test"] = "two-proportion z"
        out["z"] = (k1 / n1 - k2 / n2) / se
    return out


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


# -------------------------------------------------------------------------------------------- the report


@dataclass
class VariantStats:
    variant: str
    calls: int = 0
    upstreams: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    category_actions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (category, action) -> calls
    output_refusals: int = 0
    upstream_errors: int = 0
    denied: int = 0
    total_ms: list[float] = field(default_factory=list)
    upstream_ms: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, row: dict[str, Any]) -> None:
        self.calls += 1
        if row.get("upstream"):
            self.upstreams[row["upstream"]] += 1
        self.actions[row["final"]] += 1
        seen = {(f["category"], f["action"]) for f in row.get("findings") or [] if f.get("action") in RATE_ACTIONS}
        for key in seen:
            self.category_actions[key] += 1
        if row.get("output_action") == "block":
            self.output_refusals += 1
        if is_upstream_error(row):
            self.upstream_errors += 1
        if row.get("status") in (401, 403, 413, 429) and not is_upstream_error(row):
            self.denied += 1
        if row.get("total_ms") is not None:
            self.total_ms.append(float(row["total_ms"]))
        if row.get("upstream_ms") is not None:
            self.upstream_ms.append(float(row["upstream_ms"]))
        self.prompt_tokens += int(row.get("prompt_tokens") or 0)
        self.completion_tokens += int(row.get("completion_tokens") or 0)


def is_upstream_error(row: dict[str, Any]) -> bool:
    """The upstream (or the guarded function) failed: its errors, timeouts, bad answers."""
    err = row.get("error") or ""
    return err.startswith(("upstream_", "model_error"))


def _rate(k: int, n: int) -> dict[str, Any]:
    lo, hi = wilson(k, n)
    return {"count": k, "rate": (k / n) if n else None, "ci95": [lo, hi]}


def build_report(name: str, rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The report of experiment `name` over `rows` (flat audit rows; others are ignored)."""
    by: dict[str, VariantStats] = {}
    first = last = None
    for row in rows:
        if row.get("experiment") != name:
            continue
        v = row.get("variant") or "-"
        st = by.get(v)
        if st is None:
            st = by[v] = VariantStats(v)
        st.add(row)
        ts = float(row["ts"])
        first = ts if first is None else min(first, ts)
        last = ts if last is None else max(last, ts)
    variants = [by[k] for k in sorted(by)]
    keys = sorted({key for s in variants for key in s.category_actions})
    out_variants = []
    for s in variants:
        n = s.calls
        out_variants.append({
            "variant": s.variant, "calls": n, "upstreams": dict(s.upstreams),
            "actions": {a: s.actions.get(a, 0) for a in ACTIONS},
            "rates": {
                **{f"final_{a}": _rate(s.actions.get(a, 0), n) for a in RATE_ACTIONS},
                "output_refusal": _rate(s.output_refusals, n),
                "upstream_error": _rate(s.upstream_errors, n),
                "denied": _rate(s.denied, n),
            },
            "categories": {f"{cat}:{act}": _rate(s.category_actions.get((cat, act), 0), n) for cat, act in keys},
            "latency_ms": {"total_p50": percentile(s.total_ms, 0.5), "total_p95": percentile(s.total_ms, 0.95),
                           "upstream_p50": percentile(s.upstream_ms, 0.5), "upstream_p95": percentile(s.upstream_ms, 0.95)},
            "tokens": {"prompt": s.prompt_tokens, "completion": s.completion_tokens,
                       "per_call": ((s.prompt_tokens + s.completion_tokens) / n) if n else None},
        })
    tests: dict[str, Any] = {}
    metric_counts: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for v in out_variants:
        for metric, r in v["rates"].items():
            metric_counts[metric].append((r["count"], v["calls"]))
        for key in (f"{c}:{a}" for c, a in keys):
            metric_counts[key].append((v["categories"][key]["count"], v["calls"]))
    for metric, counts in metric_counts.items():
        t = homogeneity(counts)
        if t is not None:
            tests[metric] = t
    from guardrails.audit.record import iso_time

    return {"experiment": name, "calls": sum(s.calls for s in variants),
            "from": iso_time(first) if first is not None else None, "to": iso_time(last) if last is not None else None,
            "variants": out_variants, "tests": tests}


# ---------------------------------------------------------------------------------------------- output


def _pct(r: dict[str, Any]) -> str:
    if r["rate"] is None:
        return "-"
    lo, hi = r["ci95"]
    return f"{100 * r['rate']:.1f}% [{100 * lo:.1f}-{100 * hi:.1f}]"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def csv_text(report: dict[str, Any]) -> str:
    """One row per (variant, metric): count, calls, rate, ci95 bounds, and the test's p-value."""
    sio = io.StringIO()
    w = csv.writer(sio, lineterminator="\n")
    w.writerow(["experiment", "variant", "metric", "count", "calls", "rate", "ci95_low", "ci95_high", "p_value"])
    for v in report["variants"]:
        for metric, r in [*v["rates"].items(), *v["categories"].items()]:
            t = report["tests"].get(metric)
            w.writerow([report["experiment"], v["variant"], metric, r["count"], v["calls"],
                        "" if r["rate"] is None else f"{r['rate']:.6f}", f"{r['ci95'][0]:.6f}", f"{r['ci95'][1]:.6f}",
                        "" if t is None else f"{t['p']:.6g}"])
        for k, x in v["latency_ms"].items():
            w.writerow([report["experiment"], v["variant"], f"latency_{k}", "", v["calls"], "" if x is None else f"{x:.3f}",
                        "", "", ""])
        for k in ("prompt", "completion"):
            w.writerow([report["experiment"], v["variant"], f"tokens_{k}", v["tokens"][k], v["calls"], "", "", "", ""])
    return sio.getvalue()


def render_table(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    vs = report["variants"]
    console.print(f"experiment {report['experiment']}: {report['calls']} calls"
                  + (f" from {report['from']} to {report['to']}" if report["from"] else ""))
    if not vs:
        console.print("no calls recorded for this experiment")
        return
    t = Table(title="per variant (rates with Wilson 95% intervals)")
    t.add_column("metric")
    for v in vs:
        t.add_column(v["variant"], justify="right")
    t.add_column("p (variants differ)", justify="right")
    t.add_row("calls", *(str(v["calls"]) for v in vs), "")
    t.add_row("upstreams", *(", ".join(f"{k} {n}" for k, n in sorted(v["upstreams"].items())) for v in vs), "")
    for metric in vs[0]["rates"]:
        test = report["tests"].get(metric)
        t.add_row(metric.replace("_", " "), *(_pct(v["rates"][metric]) for v in vs), "" if test is None else f"{test['p']:.3g}")
    for metric in vs[0]["categories"]:
        test = report["tests"].get(metric)
        t.add_row(metric, *(_pct(v["categories"][metric]) for v in vs), "" if test is None else f"{test['p']:.3g}")
    for k in ("total_p50", "total_p95", "upstream_p50", "upstream_p95"):
        t.add_row(f"latency {k.replace('_', ' ')} ms", *(_ms(v["latency_ms"][k]) for v in vs), "")
    t.add_row("tokens prompt / completion", *(f"{v['tokens']['prompt']} / {v['tokens']['completion']}" for v in vs), "")
    console.print(t)
