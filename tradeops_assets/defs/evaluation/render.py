"""Turns a backtest into what people read: markdown for the Dagster UI and one HTML file.

Plots are PNGs inlined as data URIs, so the UI, the HTML report and the MLflow
artifact show the same picture with nothing else to fetch.
"""

import html
from datetime import UTC, datetime

import polars as pl

from tradeops_assets.core import display
from tradeops_assets.core.backtest import CHALLENGER, METRICS, PORTFOLIO, Backtest
from tradeops_assets.core.summary import BacktestSummary, FoldResult
from tradeops_assets.core.windows import Window
from tradeops_assets.defs.plots import figure, png

SHOWN = ("sharpe", "sortino", "total_return", "annualised_return", "volatility", "max_drawdown")


def plots(result: Backtest) -> dict[str, str]:
    curves = result.portfolio_curves()
    out = {}
    for title, column in (("Equity vs baselines", "equity"), ("Drawdown", "drawdown")):
        fig, ax = figure()
        for (strategy,), part in curves.group_by("strategy", maintain_order=True):
            width = 2.0 if strategy == CHALLENGER else 1.0
            ax.plot(part["timestamp"].to_list(), part[column].to_list(), label=strategy, lw=width)
        ax.set_title(f"{title} (equal-weight portfolio, held-out window)")
        ax.legend(loc="best", fontsize=7)
        out[column] = png(fig)
    fig, ax = figure()
    mine = result.ledger.filter(pl.col("strategy") == CHALLENGER)
    for (symbol,), part in mine.group_by("symbol", maintain_order=True):
        ax.plot(part["timestamp"].to_list(), part["position"].to_list(), label=symbol, lw=0.8)
    ax.set_title("Challenger positions by symbol")
    ax.set_ylim(-1.05, 1.05)
    ax.legend(loc="best", fontsize=7)
    out["positions"] = png(fig)
    return out


def metrics_markdown(result: Backtest, columns=METRICS) -> str:
    rows = result.metrics.filter(pl.col("symbol") == PORTFOLIO)
    lines = ["| strategy | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows.iter_rows(named=True):
        cells = " | ".join(display.figure(c, row[c]) for c in columns)
        lines.append(f"| {row['strategy']} | {cells} |")
    return "\n".join(lines)


def independence(fold: FoldResult, held_out: Window) -> str:
    """A fold whose test bars include held-out bars is not independent evidence of them."""
    if fold.test.last < held_out.first or fold.test.first > held_out.last:
        return "yes"
    return "no: re-tests held-out bars"


def folds_markdown(folds: tuple[FoldResult, ...], held_out: Window) -> str:
    if not folds:
        return "no walk-forward folds"
    strategies = list(folds[0].sharpe)
    lines = [
        "| fold | seed | test window | independent of held-out | "
        + " | ".join(f"Sharpe {s}" for s in strategies)
        + " |",
        "|---" * (len(strategies) + 4) + "|",
    ]
    for f in folds:
        cells = " | ".join(display.figure("sharpe", f.sharpe[s]) for s in strategies)
        lines.append(f"| {f.fold} | {f.seed} | {f.test} | {independence(f, held_out)} | {cells} |")
    return "\n".join(lines)


def html_report(
    title: str, summary: BacktestSummary, result: Backtest, images: dict[str, str]
) -> str:
    """A standalone page an auditor can archive: nothing external to load."""
    rows = result.metrics.filter(pl.col("symbol") == PORTFOLIO)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("strategy", *METRICS))
    body = "".join(
        "<tr>"
        + f"<td>{html.escape(r['strategy'])}</td>"
        + "".join(f"<td>{display.figure(c, r[c])}</td>" for c in METRICS)
        + "</tr>"
        for r in rows.iter_rows(named=True)
    )
    fold_rows = "".join(
        f"<tr><td>{f.fold}</td><td>{f.seed}</td><td>{html.escape(str(f.train))}</td>"
        f"<td>{html.escape(str(f.test))}</td><td>{independence(f, summary.held_out)}</td>"
        + "".join(f"<td>{s}: {display.figure('sharpe', v)}</td>" for s, v in f.sharpe.items())
        + "</tr>"
        for f in summary.folds
    )
    lineage = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in (
            ("challenger version", summary.challenger_version),
            ("champion version", summary.champion_version or "none yet"),
            ("feature data version", summary.data_version),
            ("held-out window", summary.held_out),
            ("code version", summary.code_version),
            ("Dagster run", summary.run_id),
        )
    )
    pictures = "".join(
        f'<h3>{html.escape(n)}</h3><img alt="{html.escape(n)}" src="data:image/png;base64,{p}">'
        for n, p in images.items()
    )
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    strategies = len(summary.folds[0].sharpe) if summary.folds else 1
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head>
<body><h1>{html.escape(title)}</h1><p>Generated {stamp}</p>
<h2>Lineage</h2><table>{lineage}</table>
<h2>Held-out window, equal-weight portfolio</h2><table><tr>{head}</tr>{body}</table>
<h2>Walk-forward folds</h2><table><tr><th>fold</th><th>seed</th><th>trained on</th>
<th>tested on</th><th>independent of held-out</th><th colspan="{strategies}">Sharpe</th></tr>
{fold_rows}</table>
<h2>Plots</h2>{pictures}</body></html>
"""
