"""Rich building blocks that know nothing about runs: sparkline, aligned columns, bars,
fitting lines into a screen budget, two renderables side by side.

They are hand-rolled where rich's own (Table, Table.grid) would cost several times more per
redraw; the dashboard redraws up to twice a second inside the training process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.text import Text

__all__ = ["SideBySide", "bar", "columns", "fit_lines", "screen_rows", "sparkline"]

_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(
    values: Sequence[float | None],
    stages: Sequence[str],
    width: int,
    *,
    lo: float | None = None,
    hi: float | None = None,
    current: str | None = None,
) -> Text:
    """A one-line chart of ``values`` (oldest first) at most ``width`` cells wide.

    Points are averaged into buckets that never straddle a stage; a ``│`` marks each stage
    boundary; the current stage is bright, earlier ones dim. ``lo``/``hi`` fix the scale
    (ratios use 0..1), otherwise it spans the finite values shown. Missing or non-finite
    values show as a space.

    >>> sparkline([0.0, 0.5, 1.0], ["a", "a", "a"], 10, lo=0.0, hi=1.0).plain
    '▁▅█'
    >>> sparkline([0.0, 1.0, 0.0, 1.0], ["a", "a", "b", "b"], 10).plain
    '▁█│▁█'
    >>> sparkline(list(range(100)), ["a"] * 100, 5).plain
    '▁▃▅▇█'
    """
    width = max(1, width)
    segments: list[tuple[str, list[float | None]]] = []
    for value, stage in zip(values, stages, strict=True):
        if not segments or segments[-1][0] != stage:
            segments.append((stage, []))
        segments[-1][1].append(value)
    while len(segments) > 1 and sum(len(s[1]) for s in segments) + len(segments) - 1 > width:
        # Too many stages to show each with a boundary: drop the oldest whole stage first
        # when it cannot get at least a few cells.
        if len(segments) - 1 + 2 * len(segments) > width:
            segments.pop(0)
        else:
            break
    avail = max(len(segments), width - (len(segments) - 1))
    total = sum(len(s[1]) for s in segments)
    if total > avail:
        # Give each stage columns in proportion to its points (at least one each).
        cols = [max(1, len(s[1]) * avail // total) for s in segments]
        while sum(cols) > avail:
            cols[cols.index(max(cols))] -= 1
        buckets = []
        for (stage, pts), n in zip(segments, cols, strict=True):
            n = min(n, len(pts))
            out: list[float | None] = []
            for j in range(n):
                chunk = [
                    v
                    for v in pts[j * len(pts) // n : (j + 1) * len(pts) // n]
                    if v is not None and math.isfinite(v)
                ]
                out.append(sum(chunk) / len(chunk) if chunk else None)
            buckets.append((stage, out))
        segments = buckets
    finite = [v for _, pts in segments for v in pts if v is not None and math.isfinite(v)]
    low = lo if lo is not None else (min(finite) if finite else 0.0)
    high = hi if hi is not None else (max(finite) if finite else 1.0)
    span = high - low
    text = Text()
    last_stage = segments[-1][0] if segments else None
    current = current if current is not None else last_stage
    for i, (stage, pts) in enumerate(segments):
        if i:
            text.append("│", style="yellow")
        chars = []
        for v in pts:
            if v is None or not math.isfinite(v):
                chars.append(" ")
            elif span <= 0:
                chars.append(_SPARK[len(_SPARK) // 2 - 1])
            else:
                level = (min(max(v, low), high) - low) / span
                chars.append(_SPARK[min(len(_SPARK) - 1, int(level * len(_SPARK)))])
        text.append("".join(chars), style="bold cyan" if stage == current else "dim cyan")
    return text


def columns(rows: list[list[Text]], gap: int = 2) -> list[Text]:
    """Cells padded into aligned columns, one Text per row (much cheaper than a rich Table).

    >>> [t.plain for t in columns([[Text("a"), Text("bb")], [Text("ccc"), Text("d")]])]
    ['a    bb', 'ccc  d']
    """
    widths = (
        [max(cell_len(row[c].plain) for row in rows) for c in range(len(rows[0]))] if rows else []
    )
    out = []
    for row in rows:
        line = Text(no_wrap=True, overflow="ellipsis")
        for c, cell in enumerate(row):
            line.append_text(cell)
            if c < len(row) - 1:
                line.append(" " * (widths[c] - cell_len(cell.plain) + gap))
        out.append(line)
    return out


def bar(done: int, total: int, width: int) -> Text:
    """A progress bar ``width`` cells wide: magenta while running, green when full."""
    width = max(1, width)
    filled = round(width * min(done, total) / max(1, total))
    line = Text("━" * filled, style="magenta" if done < total else "green")
    line.append("━" * (width - filled), style="grey23")
    return line


def screen_rows(text: str, width: int) -> int:
    """Screen rows that ``text`` takes when wrapped at ``width`` (an estimate: no word wrap)."""
    return sum(max(1, -(-len(part) // max(1, width))) for part in text.split("\n"))


def fit_lines(lines: list[Text], max_lines: int, width: int) -> list[Text]:
    """Keep the head and the tail (where the answer is) within ``max_lines`` screen rows."""
    for t in lines:
        if len(t.plain) <= width:
            t.no_wrap = True  # nothing to wrap: skip rich's (costly) line division

    def rows(t: Text) -> int:
        return screen_rows(t.plain, width)

    if sum(rows(t) for t in lines) <= max_lines:
        return lines
    budget = max(1, max_lines - 1)
    tail: list[Text] = []
    used = 0
    for t in reversed(lines):
        if used + rows(t) > max(1, (budget * 2) // 3) and tail:
            break
        tail.insert(0, t)
        used += rows(t)
    head: list[Text] = []
    for t in lines[: len(lines) - len(tail)]:
        if used + rows(t) > budget:
            break
        head.append(t)
        used += rows(t)
    hidden = len(lines) - len(head) - len(tail)
    return [*head, Text(f"… {hidden} more lines …", style="dim"), *tail] if hidden else lines


class SideBySide:
    """Two renderables side by side (a Table.grid does this too, at several times the cost)."""

    def __init__(self, left: RenderableType, right: RenderableType, left_width: int) -> None:
        self.left, self.right, self.left_width = left, right, left_width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lw = min(self.left_width, options.max_width)
        rw = max(1, options.max_width - lw)
        left = console.render_lines(self.left, options.update(width=lw, height=None), pad=True)
        right = console.render_lines(self.right, options.update(width=rw, height=None), pad=True)
        height = max(len(left), len(right))
        left += [[Segment(" " * lw)]] * (height - len(left))
        right += [[Segment(" " * rw)]] * (height - len(right))
        new_line = Segment.line()
        for a, b in zip(left, right, strict=True):
            yield from a
            yield from b
            yield new_line
