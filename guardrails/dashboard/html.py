"""The audit dashboard page: server-rendered HTML with inline SVG charts, no external asset (the one
script it loads ships in the package). Every figure carries a `data-fig` attribute so tests (and
scrapers) can read it back.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

from guardrails.experiment_report import ACTIONS

COLOURS = {"allow": "#4caf50", "flag": "#ffb300", "redact": "#1e88e5", "route": "#8e24aa", "block": "#e53935"}
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px;display:flex;justify-content:space-between;align-items:center}
header h1{font-size:20px;margin:0}header small{opacity:.75}
main{padding:16px 24px;display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px}
section{background:#fff;border-radius:8px;padding:14px 18px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
section.wide{grid-column:1/-1}h2{font-size:15px;margin:0 0 10px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}th{cursor:pointer;background:#fafafa}
.kpis{display:flex;gap:12px;flex-wrap:wrap}.kpi{flex:1;min-width:90px;padding:8px 12px;border-radius:6px;background:#f0f2f5}
.kpi b{display:block;font-size:22px}.ok{color:#2e7d32}.bad{color:#c62828}.legend span{margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
a{color:#1565c0}form.filters{display:flex;gap:8px;align-items:center;font-size:13px}
"""


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def _legend() -> str:
    return "<div class='legend'>" + "".join(f"<span><i style='background:{COLOURS[a]}'></i>{a}</span>" for a in ACTIONS) + "</div>"


def actions_chart(series: list[dict[str, Any]], width: int = 900, height: int = 220) -> str:
    """Stacked bars of final actions per time bucket."""
    if not series:
        return "<p>No calls in this range.</p>"
    pad_l, pad_b = 40, 40
    peak = max(sum(s["actions"].values()) for s in series) or 1
    n = len(series)
    bw = min(60.0, max(2.0, (width - pad_l - 10) / n * 0.8))
    step = (width - pad_l - 10) / n
    out = [f"<svg id='actions-chart' role='img' aria-label='actions over time' width='100%' viewBox='0 0 {width} {height}'>"]
    out.append(f"<line x1='{pad_l}' y1='{height - pad_b}' x2='{width - 5}' y2='{height - pad_b}' stroke='#999'/>")
    out.append(f"<text x='{pad_l - 6}' y='14' font-size='11' text-anchor='end'>{peak}</text>")
    for i, s in enumerate(series):
        x = pad_l + i * step + (step - bw) / 2
        y = float(height - pad_b)
        for a in ACTIONS:
            v = s["actions"][a]
            if not v:
                continue
            h = v / peak * (height - pad_b - 10)
            y -= h
            out.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{bw:.1f}' height='{h:.1f}' fill='{COLOURS[a]}'>"
                       f"<title>{_e(s['bucket'])} {a}: {v}</title></rect>")
        if n <= 12 or i % max(1, n // 12) == 0:
            out.append(f"<text x='{x + bw / 2:.1f}' y='{height - pad_b + 14}' font-size='10' text-anchor='middle'>"
                       f"{_e(s['bucket'][5:])}</text>")
    out.append("</svg>")
    return "".join(out) + _legend()


def hbars(items: list[tuple[str, int]], fig: str, colour: str = "#5c6bc0", width: int = 440) -> str:
    if not items:
        return "<p>None.</p>"
    peak = max(v for _, v in items) or 1
    rh = 22
    out = [f"<svg width='100%' viewBox='0 0 {width} {rh * len(items) + 4}' role='img'>"]
    for i, (k, v) in enumerate(items):
        w = v / peak * (width - 200)
        y = i * rh + 2
        out.append(f"<text x='0' y='{y + 15}' font-size='12'>{_e(k)}</text>"
                   f"<rect x='150' y='{y + 3}' width='{w:.1f}' height='{rh - 6}' fill='{colour}'/>"
                   f"<text x='{155 + w:.1f}' y='{y + 15}' font-size='12' data-fig='{fig}' data-key='{_e(k)}'>{v}</text>")
    out.append("</svg>")
    return "".join(out)


def group_table(rows: list[dict[str, Any]], name: str, group: str) -> str:
    head = "".join(f"<th>{a}</th>" for a in ACTIONS)
    body = "".join(
        f"<tr><td>{_e(r['key'])}</td><td data-fig='{group}-calls' data-key='{_e(r['key'])}'>{r['calls']}</td>"
        + "".join(f"<td>{r['actions'][a]}</td>" for a in ACTIONS) + "</tr>" for r in rows)
    return f"<table class='sortable' id='by-{group}'><thead><tr><th>{name}</th><th>calls</th>{head}</tr></thead><tbody>{body}</tbody></table>"


def rate_chart(report: dict[str, Any], metric: str, width: int = 440, height: int = 170) -> str:
    """Bars of one rate per variant with Wilson 95% whiskers."""
    vs = report["variants"]
    if not vs:
        return ""
    peak = max([v["rates"][metric]["ci95"][1] for v in vs] + [0.01])
    pad_b, pad_l = 30, 44
    step = (width - pad_l) / len(vs)
    bw = step * 0.5
    out = [f"<svg width='100%' viewBox='0 0 {width} {height}' role='img' aria-label='{_e(metric)} by variant'>",
           f"<text x='{pad_l - 4}' y='12' font-size='10' text-anchor='end'>{100 * peak:.0f}%</text>",
           f"<line x1='{pad_l}' y1='{height - pad_b}' x2='{width}' y2='{height - pad_b}' stroke='#999'/>"]
    scale = (height - pad_b - 12) / peak
    for i, v in enumerate(vs):
        r = v["rates"][metric]
        rate = r["rate"] or 0.0
        lo, hi = r["ci95"]
        x = pad_l + i * step + (step - bw) / 2
        y0 = height - pad_b
        out.append(f"<rect x='{x:.1f}' y='{y0 - rate * scale:.1f}' width='{bw:.1f}' height='{rate * scale:.1f}' fill='#5c6bc0'>"
                   f"<title>{_e(v['variant'])}: {100 * rate:.1f}% [{100 * lo:.1f}-{100 * hi:.1f}]</title></rect>")
        cx = x + bw / 2
        out.append(f"<line x1='{cx:.1f}' y1='{y0 - lo * scale:.1f}' x2='{cx:.1f}' y2='{y0 - hi * scale:.1f}' stroke='#222'/>"
                   f"<line x1='{cx - 6:.1f}' y1='{y0 - hi * scale:.1f}' x2='{cx + 6:.1f}' y2='{y0 - hi * scale:.1f}' stroke='#222'/>"
                   f"<line x1='{cx - 6:.1f}' y1='{y0 - lo * scale:.1f}' x2='{cx + 6:.1f}' y2='{y0 - lo * scale:.1f}' stroke='#222'/>")
        out.append(f"<text x='{cx:.1f}' y='{height - 12}' font-size='11' text-anchor='middle'>{_e(v['variant'])}</text>")
    out.append("</svg>")
    return "".join(out)


def _pct(r: dict[str, Any]) -> str:
    if r["rate"] is None:
        return "-"
    return f"{100 * r['rate']:.1f}% <small>[{100 * r['ci95'][0]:.1f}-{100 * r['ci95'][1]:.1f}]</small>"


def _p(test: dict[str, Any] | None) -> str:
    return "" if test is None else f"{test['p']:.3g}"


def experiment_section(rep: dict[str, Any], export_link: str) -> str:
    name = rep["experiment"]
    vs = rep["variants"]
    head = "".join(f"<th>{_e(v['variant'])}</th>" for v in vs)
    rows = ["<tr><td>calls</td>" + "".join(
        f"<td data-fig='exp-calls' data-exp='{_e(name)}' data-key='{_e(v['variant'])}'>{v['calls']}</td>" for v in vs)
        + "<td></td></tr>"]
    for metric in (vs[0]["rates"] if vs else {}):
        t = rep["tests"].get(metric)
        rows.append(f"<tr><td>{_e(metric.replace('_', ' '))}</td>" + "".join(
            f"<td data-fig='exp-{_e(metric)}' data-exp='{_e(name)}' data-key='{_e(v['variant'])}' "
            f"data-count='{v['rates'][metric]['count']}'>{_pct(v['rates'][metric])}</td>" for v in vs)
            + f"<td>{_p(t)}</td></tr>")
    for metric in (vs[0]["categories"] if vs else {}):
        t = rep["tests"].get(metric)
        rows.append(f"<tr><td>{_e(metric)}</td>" + "".join(f"<td>{_pct(v['categories'][metric])}</td>" for v in vs)
                    + f"<td>{_p(t)}</td></tr>")
    for k in ("total_p50", "total_p95", "upstream_p50", "upstream_p95"):
        rows.append(f"<tr><td>latency {k.replace('_', ' ')} ms</td>" + "".join(
            "<td>-</td>" if v["latency_ms"][k] is None else f"<td>{v['latency_ms'][k]:.1f}</td>" for v in vs) + "<td></td></tr>")
    rows.append("<tr><td>tokens (prompt / completion)</td>" + "".join(
        f"<td>{v['tokens']['prompt']} / {v['tokens']['completion']}</td>" for v in vs) + "<td></td></tr>")
    charts = "".join(f"<div><h3 style='font-size:13px'>{m.replace('_', ' ')} (95% Wilson)</h3>{rate_chart(rep, m)}</div>"
                     for m in ("final_block", "final_flag", "upstream_error"))
    return (f"<section class='wide experiment' data-exp='{_e(name)}'><h2>Experiment {_e(name)} "
            f"<small>({rep['calls']} calls; <a href='{export_link}'>export</a>)</small></h2>"
            f"<table class='sortable'><thead><tr><th>metric</th>{head}<th>p (variants differ)</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
            f"<div style='display:grid;grid-template-columns:repeat(3,1fr);gap:8px'>{charts}</div></section>")


def render(data: dict[str, Any], chain: dict[str, Any], *, policy_id: str, query: dict[str, str]) -> str:
    """The whole page. `chain`: {ok, summary, records, last_checkpoint_seq, last_checkpoint_time}."""
    def link(fmt: str, **extra: str) -> str:
        q = {k: v for k, v in {**query, **extra, "format": fmt}.items() if v}
        return "/dashboard/export?" + urlencode(q)

    kpis = f"<div class='kpi'><small>calls</small><b data-fig='total'>{data['total']}</b></div>" + "".join(
        f"<div class='kpi'><small>{a}</small><b data-fig='action' data-key='{a}' style='color:{COLOURS[a]}'>"
        f"{data['actions'][a]}</b></div>" for a in ACTIONS)
    ok = chain.get("ok")
    cls = "ok" if ok else "bad"
    chain_html = (f"<p class='{cls}' data-fig='chain-ok'>{'intact' if ok else 'BROKEN'}</p><p>{_e(chain.get('summary', ''))}</p>"
                  f"<p>last signed checkpoint: <b data-fig='last-checkpoint'>{_e(chain.get('last_checkpoint_seq') or 'none yet')}</b>"
                  f" {_e(chain.get('last_checkpoint_time') or '')}</p>")
    exports = " · ".join(f"<a href='{link(f)}'>{f}</a>" for f in ("jsonl", "csv", "parquet"))
    blocked = f"<a href='{link('csv', action='block')}'>blocked calls (csv)</a>"
    since, until = _e(query.get("since", "")), _e(query.get("until", ""))
    exps = "".join(experiment_section(r, link("jsonl")) for r in data["experiments"])
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>trustwall audit dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>
<header><div><h1>trustwall audit</h1><small>policy {_e(policy_id)}</small></div>
<form class="filters" method="get" action="/dashboard"><label>since <input name="since" value="{since}" size="12"></label>
<label>until <input name="until" value="{until}" size="12"></label><button>apply</button></form></header>
<main>
<section class="wide"><h2>Totals</h2><div class="kpis">{kpis}</div></section>
<section class="wide"><h2>Actions over time (per {data['width']})</h2>{actions_chart(data['series'])}</section>
<section><h2>Top categories</h2>{hbars(data['top_categories'], 'category')}</section>
<section><h2>Audit chain</h2>{chain_html}<h2>Exports</h2><p>{exports}</p><p>{blocked}</p></section>
{exps}
<section><h2>Per model</h2>{group_table(data['by_model'], 'model', 'model')}</section>
<section><h2>Per principal</h2>{group_table(data['by_principal'], 'principal', 'principal')}</section>
<section><h2>Per route</h2>{group_table(data['by_route'], 'route', 'route')}</section>
</main><script src="/dashboard/assets/dashboard.js"></script></body></html>"""


def login_page(message: str, status: int) -> str:
    form = (f"<p>The dashboard needs an API key of an admin role (status {status}).</p>"
            "<form method='post' action='/dashboard/login'><input type='password' name='key' placeholder='tw-...' "
            "size='50'><button>sign in</button></form>")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>trustwall dashboard: sign in</title>
<style>{CSS}</style></head><body><header><h1>trustwall audit</h1></header><main><section>
<h2>{_e(message)}</h2>{form if status in (401, 403) else f"<p>Status {status}. <a href='/dashboard'>Back</a></p>"}
</section></main></body></html>"""
