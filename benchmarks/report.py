"""Rows of results, their goals, and the table printed at the end."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Row:
    """One compared measurement: ours against a baseline of the same run.

    ``ratio`` is ours divided by the baseline in the unit of the row (time:
    lower is better; throughput: higher is better), and ``goal`` is an
    operator and a bound on it, e.g. ``("<=", 1.5)``.
    """

    what: str
    ours: str
    baseline: str
    ratio: float | None
    goal: tuple[str, float] | None
    note: str = ""
    extra_pass: bool = True  # a second condition of the goal (e.g. zero remote calls)
    reason: str = ""  # set when the row could not be measured
    unit: str = "x"  # of the ratio column and the goal

    @property
    def verdict(self) -> str:
        if self.reason:
            return "NOT MEASURED"
        if self.goal is None or self.ratio is None:
            return "info"
        op, bound = self.goal
        met = self.ratio <= bound if op == "<=" else self.ratio >= bound
        return "PASS" if met and self.extra_pass else "MISS"

    def goal_text(self) -> str:
        if self.goal is None:
            return "-"
        return f"{self.goal[0]} {self.goal[1]:g}{self.unit}"

    def as_dict(self) -> dict[str, object]:
        return {
            "what": self.what,
            "ours": self.ours,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "goal": self.goal_text(),
            "verdict": self.verdict,
            "note": self.note,
            "reason": self.reason,
        }


def not_measured(what: str, reason: str) -> Row:
    return Row(what, "-", "-", None, None, reason=reason)


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def mib(count: float) -> str:
    return f"{count / 2**20:.1f} MiB"


def table(sections: Sequence[Section]) -> str:
    """A plain-text table, one block per section."""
    headers = ("what", "ours", "baseline", "ratio", "goal", "result")
    lines = []
    for section in sections:
        body = []
        for row in section.rows:
            ratio = "-" if row.ratio is None else f"{row.ratio:.2f}{row.unit}"
            body.append((row.what, row.ours, row.baseline, ratio, row.goal_text(), row.verdict))
        widths = [
            max(len(h), *(len(r[i]) for r in body)) if body else len(h)
            for i, h in enumerate(headers)
        ]
        lines.append("")
        lines.append(f"== {section.title}")
        lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        for row, cells in zip(section.rows, body, strict=True):
            lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
            for text in (row.reason and f"not measured: {row.reason}", row.note):
                if text:
                    lines.append(f"    {text}")
    return "\n".join(lines)
