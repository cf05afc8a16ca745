"""The page skeleton: one self-contained HTML file (inline CSS, images as data URIs, no scripts)."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d2330;
       margin: 0; background: #f5f6f8; }
main { max-width: 1040px; margin: 0 auto; padding: 20px 24px 40px; background: #fff; box-sizing: border-box; }
h1 { font-size: 22px; margin: 4px 0 2px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #dde1e8; padding-bottom: 4px; }
.sub { color: #5a6372; margin: 0 0 14px; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eceef2; vertical-align: top;
         overflow-wrap: anywhere; }
td.lines { white-space: pre-line; }
th { background: #f0f2f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; overflow-wrap: normal; }
th { overflow-wrap: normal; }
table.kv th { width: 30%; background: none; font-weight: 500; color: #5a6372; }
img { display: block; max-width: 100%; height: auto; margin: 8px 0; }
.alarm { background: #fdecea; border-left: 4px solid #c62828; padding: 8px 12px; margin: 12px 0; }
.ok { background: #e8f5e9; border-left: 4px solid #2e7d32; padding: 8px 12px; margin: 12px 0; }
.note { color: #5a6372; font-size: 13px; }
tr.bad td { background: #fff3f2; }
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def is_reason(value: Any) -> bool:
    """One entry of a reasons column (`top_features`): {feature, share, expected}."""
    return isinstance(value, dict) and {"feature", "share"} <= set(value)


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table cell: short, with thousands separators for counts."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):  # e.g. top_features: the reasons, most important first, one a line
        return ("\n" if all(is_reason(v) for v in value) else "; ").join(fmt(v, digits) for v in value)
    if is_reason(value):  # as a person reads it
        expected = value.get("expected")
        return f"{value['feature']} {pct(value['share'])}" + ("" if expected is None else
                                                               f" (expected {fmt(expected, 3)})")
    if isinstance(value, dict):
        return " ".join(fmt(v, 3) for v in value.values())
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}g}"
    return str(value)


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.3g}%"


def kv_table(rows: Iterable[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[bool] | None = None,
          bad: Sequence[bool] | None = None, lines: Sequence[bool] | None = None) -> str:
    """`numeric` columns align right; `lines` columns show one item a line (the reasons)."""
    numeric = numeric or [False] * len(headers)
    lines = lines or [False] * len(headers)
    kinds = [' class="num"' if n else ' class="lines"' if li else "" for n, li in zip(numeric, lines, strict=True)]
    head = "".join(f'<th class="num">{_breakable(h)}</th>' if n else f"<th>{_breakable(h)}</th>"
                   for h, n in zip(headers, numeric, strict=True))
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f"<td{k}>{esc(c)}</td>" for c, k in zip(row, kinds, strict=True))
        cls = ' class="bad"' if bad is not None and bad[i] else ""
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _breakable(name: str) -> str:
    """A column name that may wrap after its underscores, never inside a word."""
    return esc(name).replace("_", "_<wbr>")


def image(data_uri: str | None, alt: str) -> str:
    return f'<img src="{data_uri}" alt="{esc(alt)}">' if data_uri else ""


def page(title: str, subtitle: str, sections: Iterable[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main><h1>{esc(title)}</h1><p class=\"sub\">{esc(subtitle)}</p>"
        + "".join(sections)
        + "</main></body></html>\n"
    )


def section(heading: str, *parts: str) -> str:
    return f"<section><h2>{esc(heading)}</h2>{''.join(parts)}</section>"
