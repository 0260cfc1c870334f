"""Charts of a report, as Vega-Lite specs rendered offline to SVG by vl-convert.

The specs are plain dicts built from the report model (no data URL: every value is inline);
`to_svg` renders one with no base URL allowed, so rendering can never reach the network, and
checks the SVG before it is inlined in a page: well-formed, no script, no foreign object, no
event handler, no link. Text from the web (headlines) is escaped by the SVG writer like any
text; the check would refuse an SVG where it was not.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from report.model import DailyReport, Narrative

TOP_NARRATIVES = 5  # narratives drawn in the daily report's charts
VEGA_LITE_VERSION = "6.4"
PALETTE = (
    "#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2",
    "#b279a2", "#eeca3b", "#9d755d", "#ff9da6", "#bab0ac",
)  # fmt: skip
# measured (by vl-convert) and drawn (by the browser) in a wide face: where the reader's browser
# lacks it, the fallbacks are narrower, so labels never outgrow the space measured for them
_FONT = "DejaVu Sans, Verdana, sans-serif"
CONFIG: dict[str, Any] = {
    "font": _FONT,
    "background": "white",
    "view": {"stroke": None},
    "axis": {"labelFontSize": 11, "titleFontSize": 11, "titleFontWeight": "normal"},
    "legend": {"labelFontSize": 11, "titleFontSize": 11, "labelLimit": 260, "orient": "bottom",
               "columns": 1, "symbolLimit": 40},
    "title": {"fontSize": 13, "anchor": "start", "fontWeight": 600},
}  # fmt: skip
WIDTH = 560


class ChartError(RuntimeError):
    """A chart could not be rendered, or its SVG is not safe to inline."""


def short_label(narrative: Narrative, limit: int = 34) -> str:
    """ "#1 Mass resignations in the army": the rank, then the watchlist name or the headline."""
    text = narrative.watchlist[0] if narrative.watchlist else " ".join(narrative.label.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip(" ,;:.-") + "…"
    return f"#{narrative.rank} {text}"


def _day(value: date) -> str:
    return value.strftime("%b %d")


def _spec(title: str, layer: dict[str, Any], height: int = 180) -> dict[str, Any]:
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "title": title,
        "width": WIDTH,
        "height": height,
        "config": CONFIG,
        **layer,
    }


def _narrative_color(top: Sequence[Narrative]) -> dict[str, Any]:
    labels = [short_label(n) for n in top]
    return {
        "field": "narrative",
        "type": "nominal",
        "title": None,
        "scale": {"domain": labels, "range": list(PALETTE[: len(labels)])},
        "sort": labels,
    }


def _day_axis(days: Sequence[str]) -> dict[str, Any]:
    return {
        "field": "day",
        "type": "ordinal",
        "sort": list(days),
        "scale": {"domain": list(days)},
        "title": "day (first seen, UTC)",
        "axis": {"labelAngle": 0},
    }


def articles_per_day_spec(report: DailyReport, share: bool = False) -> dict[str, Any]:
    """Copies of the top narratives first seen each day of the window, as counts or as a share
    of every article first seen that day."""
    top = report.narratives[:TOP_NARRATIVES]
    totals = dict(report.articles_per_day)
    days = [_day(d) for d, _ in report.articles_per_day]
    values = []
    for narrative in top:
        for point in narrative.days:
            total = totals.get(point.day, 0)
            value = (point.copies / total if total else 0.0) if share else point.copies
            values.append({"day": _day(point.day), "narrative": short_label(narrative), "v": value})
    title = (
        "Share of all articles first seen each day"
        if share
        else "Copies first seen each day, top narratives"
    )
    y: dict[str, Any] = {"field": "v", "type": "quantitative", "title": "copies"}
    if share:
        y = {"field": "v", "type": "quantitative", "title": "share", "axis": {"format": ".0%"}}
    return _spec(
        title,
        {
            "data": {"values": values},
            "mark": {"type": "line", "point": True, "strokeWidth": 2},
            "encoding": {"x": _day_axis(days), "y": y, "color": _narrative_color(top)},
        },
    )


def outlets_reached_spec(report: DailyReport) -> dict[str, Any]:
    """Distinct outlets each top narrative had reached by the end of each day of the window."""
    top = report.narratives[:TOP_NARRATIVES]
    days = [_day(d) for d, _ in report.articles_per_day]
    values = [
        {"day": _day(p.day), "narrative": short_label(n), "v": p.outlets_reached}
        for n in top
        for p in n.days
    ]
    return _spec(
        "Outlets reached by the end of each day",
        {
            "data": {"values": values},
            "mark": {"type": "line", "point": True, "strokeWidth": 2, "interpolate": "step-after"},
            "encoding": {
                "x": _day_axis(days),
                "y": {"field": "v", "type": "quantitative", "title": "outlets"},
                "color": _narrative_color(top),
            },
        },
    )


def breakdown_spec(report: DailyReport, field: str) -> dict[str, Any]:
    """Outlets reached by each top narrative, split by the outlets' `field` in the config
    ("kind" or "country")."""
    if field not in ("kind", "country"):
        raise ValueError(f"no outlet field {field!r}")
    top = report.narratives[:TOP_NARRATIVES]
    values = []
    for narrative in top:
        groups: dict[str, set[str]] = {}
        for copy in narrative.copies:
            groups.setdefault(getattr(copy, field) or "unknown", set()).add(copy.outlet)
        for group, outlets in sorted(groups.items()):
            values.append({"narrative": short_label(narrative), "group": group, "v": len(outlets)})
    labels = [short_label(n) for n in top]
    return _spec(
        f"Outlets reached, by outlet {field}",
        {
            "data": {"values": values},
            "mark": {"type": "bar"},
            "encoding": {
                "y": {
                    "field": "narrative",
                    "type": "nominal",
                    "sort": labels,
                    "title": None,
                    "axis": {"labelLimit": 200},
                },
                "x": {"field": "v", "type": "quantitative", "title": "outlets", "stack": "zero"},
                "color": {
                    "field": "group",
                    "type": "nominal",
                    "title": field,
                    "scale": {"scheme": "tableau10"},
                    "legend": {"columns": 4},
                },
                "order": {"field": "group"},
            },
        },  # fmt: skip
        height=max(60, 26 * len(top)),
    )


def timeline_spec(narrative: Narrative) -> dict[str, Any]:
    """Copies of one narrative per day (first seen), stacked by outlet, from its first copy to
    its last."""
    first = narrative.copies[0].first_seen_at.date()
    last = max(c.first_seen_at for c in narrative.copies).date()
    days = [_day(first + timedelta(days=i)) for i in range((last - first).days + 1)]
    counts: dict[tuple[str, str], int] = {}
    for copy in narrative.copies:
        key = (_day(copy.first_seen_at.date()), copy.outlet)
        counts[key] = counts.get(key, 0) + 1
    values = [{"day": d, "outlet": o, "v": n} for (d, o), n in counts.items()]
    return _spec(
        "Copies per day (first seen, UTC), stacked by outlet",
        {
            "data": {"values": values},
            "mark": {"type": "bar"},
            "encoding": {
                "x": {**_day_axis(days), "axis": {"labelAngle": -45 if len(days) > 12 else 0}},
                "y": {"field": "v", "type": "quantitative", "title": "copies", "stack": "zero"},
                "color": {
                    "field": "outlet",
                    "type": "nominal",
                    "title": None,
                    "sort": list(narrative.outlets),
                    "scale": {"scheme": "tableau20"},
                    "legend": {"columns": 3, "labelLimit": 150},
                },
                "order": {"field": "outlet"},
            },
        },
        height=170,
    )


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def spread_spec(narrative: Narrative) -> dict[str, Any]:
    """Which outlet carried it after which: one row per outlet in order of appearance
    (published clock), a dot per copy, a line from each copy back to the copy it was matched
    against."""
    firsts: dict[str, datetime] = {}
    for copy in narrative.copies:
        if copy.outlet not in firsts or copy.appeared_at < firsts[copy.outlet]:
            firsts[copy.outlet] = copy.appeared_at
    order = sorted(firsts, key=lambda o: (firsts[o], o))
    dots = [
        {"outlet": c.outlet, "t": _iso(c.appeared_at), "kind": c.match_kind or "earliest"}
        for c in narrative.copies
    ]
    edges = [
        {
            "from": c.matched_outlet,
            "to": c.outlet,
            "t0": _iso(c.matched_appeared_at),
            "t1": _iso(c.appeared_at),
        }
        for c in narrative.copies
        if c.matched_outlet and c.matched_appeared_at
    ]
    y = {"type": "ordinal", "scale": {"domain": order}, "title": None, "axis": {"labelLimit": 180}}
    x_title = "published (first seen where the outlet gives no earlier time), UTC"
    x = {"type": "temporal", "scale": {"type": "utc"}, "title": x_title,
         "axis": {"format": "%b %d %H:%M", "labelAngle": 0, "tickCount": 6}}  # fmt: skip
    return _spec(
        "Spread: outlets in order of appearance",
        {
            "layer": [
                {
                    "data": {"values": edges},
                    "mark": {"type": "rule", "color": "#9aa3ad", "strokeWidth": 1},
                    "encoding": {
                        "x": {"field": "t0", **x},
                        "x2": {"field": "t1"},
                        "y": {"field": "from", **y},
                        "y2": {"field": "to"},
                    },
                },
                {
                    "data": {"values": dots},
                    "mark": {"type": "circle", "size": 60, "opacity": 0.9},
                    "encoding": {
                        "x": {"field": "t", **x},
                        "y": {"field": "outlet", **y},
                        "color": {
                            "field": "kind",
                            "type": "nominal",
                            "title": "match",
                            "scale": {
                                "domain": ["earliest", "copy", "passage"],
                                "range": ["#e45756", "#4c78a8", "#f58518"],
                            },
                        },
                    },
                },
            ]
        },
        height=max(80, 20 * len(order)),
    )


# --- rendering -----------------------------------------------------------------------------

_FORBIDDEN_TAGS = {"script", "foreignobject", "iframe", "object", "embed", "use", "image", "a"}
_ID = re.compile(r'\bid="([^"]+)"')


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def check_svg(svg: str) -> None:
    """Raise ChartError unless `svg` is one well-formed SVG element with nothing active in it."""
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as exc:
        raise ChartError(f"the chart is not well-formed SVG: {exc}") from None
    if _local(root.tag) != "svg":
        raise ChartError(f"the chart's root element is <{_local(root.tag)}>, not <svg>")
    for element in root.iter():
        tag = _local(element.tag)
        if tag in _FORBIDDEN_TAGS:
            raise ChartError(f"the chart holds a <{tag}> element")
        for name, value in element.attrib.items():
            attr = _local(name)
            if attr.startswith("on") or attr == "href":
                raise ChartError(f"the chart holds an attribute {attr!r}")
            if "url(" in value and not value.strip().startswith("url(#"):
                raise ChartError("the chart refers to an outside resource")


def to_svg(spec: dict[str, Any], id_prefix: str = "c", description: str = "") -> str:
    """The chart as an inline <svg> element: rendered offline, checked, ids made unique to
    the page with `id_prefix`, and labelled for screen readers with `description`."""
    import vl_convert

    try:
        svg = vl_convert.vegalite_to_svg(
            spec, vl_version=VEGA_LITE_VERSION, allowed_base_urls=[], show_warnings=False
        )
    except Exception as exc:  # vl-convert raises plain ValueErrors with the Vega message
        raise ChartError(f"cannot render chart {spec.get('title')!r}: {exc}") from None
    check_svg(svg)
    for found in sorted(set(_ID.findall(svg)), key=len, reverse=True):
        svg = svg.replace(f'id="{found}"', f'id="{id_prefix}-{found}"')
        svg = svg.replace(f"url(#{found})", f"url(#{id_prefix}-{found})")
    label = description or str(spec.get("title", "chart"))
    label = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return svg.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)


def report_charts(report: DailyReport) -> dict[str, str]:
    """The daily report's charts as inline SVG, by name (none when no narrative is listed)."""
    if not report.narratives:
        return {}
    specs = {
        "copies": articles_per_day_spec(report),
        "share": articles_per_day_spec(report, share=True),
        "outlets": outlets_reached_spec(report),
        "kind": breakdown_spec(report, "kind"),
        "country": breakdown_spec(report, "country"),
    }
    return {name: to_svg(spec, id_prefix=name) for name, spec in specs.items()}


def narrative_charts(narrative: Narrative) -> dict[str, str]:
    return {
        "timeline": to_svg(timeline_spec(narrative), id_prefix="timeline"),
        "spread": to_svg(spread_spec(narrative), id_prefix="spread"),
    }


__all__ = [
    "ChartError",
    "check_svg",
    "narrative_charts",
    "report_charts",
    "short_label",
    "to_svg",
]
