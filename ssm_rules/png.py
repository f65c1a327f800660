"""The run's timeline as a PNG, drawn with the standard library alone (zlib + struct).

Why not matplotlib: it would add ~40 MB (numpy, fonts) to a package that otherwise runs on
any Python, for one chart of rectangles. Why not a browser's screenshot of the HTML page: no
browser is on a CI machine or a laptop by default. A timeline is rows of coloured bars plus
labels: an RGB canvas, a 5x7 bitmap font and PNG's filter-0 scanlines are all it takes, and
the bytes are deterministic (tests decode them and check the bars' colours).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Protocol

RGB = tuple[int, int, int]

# 5x7 glyphs, one string of 7 rows per character ("#" = ink). Lower case is drawn upper case.
_GLYPHS = {
    "A": ".###.#...##...#######...##...##...#",
    "B": "####.#...##...#####.#...##...#####.",
    "C": ".###.#...##....#....#....#...#.###.",
    "D": "####.#...##...##...##...##...#####.",
    "E": "######....#....####.#....#....#####",
    "F": "######....#....####.#....#....#....",
    "G": ".###.#...##....#.####...##...#.####",
    "H": "#...##...##...#######...##...##...#",
    "I": ".###...#....#....#....#....#...###.",
    "J": "..###...#....#....#....#.#..#..##..",
    "K": "#...##..#.#.#..##...#.#..#..#.#...#",
    "L": "#....#....#....#....#....#....#####",
    "M": "#...###.###.#.##.#.##...##...##...#",
    "N": "#...###..##.#.##..###...##...##...#",
    "O": ".###.#...##...##...##...##...#.###.",
    "P": "####.#...##...#####.#....#....#....",
    "Q": ".###.#...##...##...##.#.##..#..##.#",
    "R": "####.#...##...#####.#.#..#..#.#...#",
    "S": ".#####....#.....###.....#....#####.",
    "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.",
    "V": "#...##...##...##...##...#.#.#...#..",
    "W": "#...##...##...##.#.##.#.##.#.#.#.#.",
    "X": "#...##...#.#.#...#...#.#.#...##...#",
    "Y": "#...##...#.#.#...#....#....#....#..",
    "Z": "#####....#...#...#...#...#....#####",
    "0": ".###.#...##..###.#.###..##...#.###.",
    "1": "..#...##....#....#....#....#...###.",
    "2": ".###.#...#....#...#...#...#...#####",
    "3": "#####...#...#.....#.....##...#.###.",
    "4": "...#...##..#.#.#..#.#####...#....#.",
    "5": "######....####.....#....##...#.###.",
    "6": "..##..#...#....####.#...##...#.###.",
    "7": "#####....#...#...#...#....#....#...",
    "8": ".###.#...##...#.###.#...##...#.###.",
    "9": ".###.#...##...#.####....#...#..##..",
    "-": "...............#####...............",
    "_": "..............................#####",
    ".": "..........................##...##..",
    ":": "......##...##........##...##.......",
    "=": "..........#####.....#####..........",
    "(": "...#...#...#....#....#.....#.....#.",
    ")": ".#.....#.....#....#....#...#...#...",
    "/": ".........#...#...#...#...#.........",
    ",": "....................##....#...#....",
    "+": ".......#....#..#####..#....#.......",
    "$": "..#...####.#....###....#.####...#..",
}
GLYPH_W, GLYPH_H, ADVANCE = 5, 7, 6


class Canvas:
    def __init__(self, width: int, height: int, background: RGB = (255, 255, 255)) -> None:
        self.width = width
        self.height = height
        self.rows = [bytearray(bytes(background) * width) for _ in range(height)]

    def rect(self, x: int, y: int, w: int, h: int, rgb: RGB) -> None:
        x0, x1 = max(0, x), min(self.width, x + w)
        if x1 <= x0:
            return
        fill = bytes(rgb) * (x1 - x0)
        for yy in range(max(0, y), min(self.height, y + h)):
            self.rows[yy][3 * x0 : 3 * x1] = fill

    def text(self, x: int, y: int, text: str, rgb: RGB = (0, 0, 0)) -> None:
        for i, ch in enumerate(text.upper()):
            glyph = _GLYPHS.get(ch, "")
            glyph = glyph.ljust(GLYPH_W * GLYPH_H, ".")
            for k, ink in enumerate(glyph[: GLYPH_W * GLYPH_H]):
                if ink == "#":
                    self.rect(x + i * ADVANCE + k % GLYPH_W, y + k // GLYPH_W, 1, 1, rgb)

    def png(self) -> bytes:
        """PNG: signature, IHDR (8-bit RGB), one IDAT of filter-0 scanlines, IEND."""
        raw = b"".join(b"\x00" + bytes(row) for row in self.rows)

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b"")
        )


class _Phase(Protocol):
    status: str
    start: float
    end: float


LABEL_W = 240  # label column: 40 characters
BARS_W = 760
ROW_H = 16
BAR_H = 10
TOP = 8


def layout(bill: object) -> tuple[float, float]:
    """Pixels per second and the first instant: the same mapping for drawing and tests."""
    span = bill.span  # type: ignore[attr-defined]
    if span is None:
        return 1.0, 0.0
    t0, t1 = span
    return BARS_W / max(t1 - t0, 1.0), t0


def bar_x(t: float, scale: float, t0: float) -> int:
    return LABEL_W + int((t - t0) * scale)


def timeline_png(bill: object, colour: Callable[[str], RGB]) -> bytes:
    """A row per job (rule and wildcards on the left, its phases as bars), a legend below."""
    jobs = bill.jobs  # type: ignore[attr-defined]
    statuses = sorted({p.status for j in jobs for p in j.phases})
    height = TOP + len(jobs) * ROW_H + 14 + ROW_H * ((len(statuses) + 5) // 6) + 4
    canvas = Canvas(LABEL_W + BARS_W + 10, height)
    scale, t0 = layout(bill)
    for i, job in enumerate(jobs):
        y = TOP + i * ROW_H
        wildcards = ",".join(f"{k}={v}" for k, v in job.wildcards.items())
        label = job.rule + (f" ({wildcards})" if wildcards else "")
        canvas.text(2, y + 1, label[: (LABEL_W - 8) // ADVANCE])
        for p in job.phases:
            x0, x1 = bar_x(p.start, scale, t0), bar_x(p.end, scale, t0)
            canvas.rect(x0, y, max(x1 - x0, 1), BAR_H, colour(p.status))
    y = TOP + len(jobs) * ROW_H + 6
    canvas.rect(LABEL_W, y - 4, BARS_W, 1, (120, 120, 120))  # the time axis
    for k, status in enumerate(statuses):
        x = 2 + (k % 6) * 165
        yy = y + 4 + (k // 6) * ROW_H
        canvas.rect(x, yy, 9, 9, colour(status))
        canvas.text(x + 13, yy + 1, status)
    return canvas.png()
