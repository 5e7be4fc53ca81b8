"""The experiment report's statistics (Wilson intervals, chi-square / two-proportion z, percentiles) against
known values, and its per-variant counts on hand-made rows."""

from __future__ import annotations

import csv
import io
import math

import pytest

from guardrails.experiment_report import build_report, chi2_sf, csv_text, homogeneity, percentile, wilson


def test_wilson_known_values() -> None:
    lo, hi = wilson(10, 100)
    assert lo == pytest.approx(0.05523, abs=1e-4) and hi == pytest.approx(0.17437, abs=1e-4)
    assert wilson(0, 20)[0] == 0.0 and wilson(0, 20)[1] == pytest.approx(0.16112, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(("x", "df", "p"), [
    (3.841458820694124, 1, 0.05), (5.991464547107979, 2, 0.05), (11.070497693516351, 5, 0.05),
    (1.0, 1, 0.31731050786291415), (20.0, 10, 0.029252688076961127), (0.5, 3, 0.9188914117), (60.0, 40, 0.021873468),
])
def test_chi2_survival(x: float, df: int, p: float) -> None:
    assert chi2_sf(x, df) == pytest.approx(p, rel=2e-3)


def test_two_proportion_z_equals_chi_square() -> None:
    t = homogeneity([(50, 100), (30, 100)])
    assert t["test"] == "two-proportion z"
    assert t["z"] == pytest.approx(2.886751, abs=1e-5)
    assert t["chi2"] == pytest.approx(t["z"] ** 2)
    assert t["p"] == pytest.approx(math.erfc(t["z"] / math.sqrt(2)), rel=1e-6)
    assert homogeneity([(0, 10), (0, 10)]) is None and homogeneity([(3, 10)]) is None
    assert homogeneity([(10, 100), (10, 100), (30, 100)])["df"] == 2


def test_percentile_matches_linear_interpolation() -> None:
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile(list(range(1, 101)), 0.95) == pytest.approx(95.05)
    assert percentile([], 0.5) is None


def row(variant: str, final: str = "allow", **kw: object) -> dict[str, object]:
    base = {"experiment": "ab", "variant": variant, "final": final, "ts": 1_790_000_000.0, "upstream": variant[0],
            "findings": [], "output_action": None, "status": 200, "error": None, "total_ms": 10.0, "upstream_ms": 5.0,
            "prompt_tokens": 3, "completion_tokens": 4}
    base.update(kw)
    return base


def test_report_counts_per_variant_and_category() -> None:
    rows = [row("a") for _ in range(7)]
    rows += [row("a", "block", findings=[{"category": "secret", "action": "block"}, {"category": "secret", "action": "block"}])]
    rows += [row("a", "block", output_action="block", findings=[{"category": "toxicity", "action": "block"}])]
    rows += [row("b", "flag", findings=[{"category": "toxicity", "action": "flag"}, {"category": "PERSON", "action": "allow"}])]
    rows += [row("b", error="upstream_timeout", status=504, total_ms=None, upstream_ms=None, prompt_tokens=None)]
    rows += [row("b", error="licence_not_allowed", status=403, final="block")]
    rows += [{**row("c"), "experiment": "other"}]
    rep = build_report("ab", rows)
    assert rep["calls"] == 12
    a, b = rep["variants"]
    assert (a["variant"], a["calls"], b["variant"], b["calls"]) == ("a", 9, "b", 3)
    assert a["rates"]["final_block"]["count"] == 2 and a["rates"]["output_refusal"]["count"] == 1
    assert a["categories"]["secret:block"]["count"] == 1  # calls, not findings
    assert a["categories"]["toxicity:flag"]["count"] == 0 and b["categories"]["toxicity:flag"]["count"] == 1
    assert "PERSON:allow" not in a["categories"]
    assert b["rates"]["upstream_error"]["count"] == 1 and b["rates"]["denied"]["count"] == 1
    assert b["latency_ms"]["total_p50"] == 10.0 and b["tokens"]["prompt"] == 6 and a["tokens"]["completion"] == 36
    assert set(rep["tests"]) >= {"final_block", "final_flag", "upstream_error"}
    parsed = list(csv.DictReader(io.StringIO(csv_text(rep))))
    got = next(r for r in parsed if r["variant"] == "a" and r["metric"] == "final_block")
    assert (got["count"], got["calls"]) == ("2", "9") and float(got["p_value"]) == pytest.approx(rep["tests"]["final_block"]["p"], rel=1e-5)
    assert build_report("missing", rows)["variants"] == []
