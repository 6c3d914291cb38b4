#!/usr/bin/python3
"""Renders a terminal capture (tmux capture-pane -e -p) to a PNG.

    tmux capture-pane -e -p -t SESSION > capture.txt
    img/term2png.py capture.txt img/menu.png

Only what tmux emits is understood: SGR colours (16 and 256), bold, reset.
Needs Pillow (Debian: python3-pil) and DejaVu Sans Mono.
"""
import re
import sys

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
# The mono font lacks braille, which the progress spinner draws with.
WIDE = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SIZE = 15
BG = (30, 30, 36)
FG = (220, 220, 220)
# xterm's 16 colours, a little softened.
PALETTE = [
    (0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16),
    (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229),
    (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67),
    (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255),
]


def color256(n):
    if n < 16:
        return PALETTE[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    v = 8 + 10 * (n - 232)
    return (v, v, v)


def parse(text):
    """Lines of (char, fg, bg, bold) cells."""
    lines = []
    fg, bg, bold = FG, None, False
    for raw in text.rstrip("\n").split("\n"):
        cells = []
        for part in re.split(r"(\x1b\[[0-9;]*m)", raw):
            m = re.fullmatch(r"\x1b\[([0-9;]*)m", part)
            if not m:
                cells.extend((c, fg, bg, bold) for c in part)
                continue
            codes = [int(c) if c else 0 for c in m.group(1).split(";")]
            i = 0
            while i < len(codes):
                c = codes[i]
                if c == 0:
                    fg, bg, bold = FG, None, False
                elif c == 1:
                    bold = True
                elif c == 22:
                    bold = False
                elif 30 <= c <= 37:
                    fg = PALETTE[c - 30]
                elif 90 <= c <= 97:
                    fg = PALETTE[c - 90 + 8]
                elif c == 39:
                    fg = FG
                elif 40 <= c <= 47:
                    bg = PALETTE[c - 40]
                elif c == 49:
                    bg = None
                elif c in (38, 48) and i + 2 < len(codes) and codes[i + 1] == 5:
                    if c == 38:
                        fg = color256(codes[i + 2])
                    else:
                        bg = color256(codes[i + 2])
                    i += 2
                i += 1
        lines.append(cells)
    while lines and not "".join(c[0] for c in lines[-1]).strip():
        lines.pop()
    return lines


def render(lines, out):
    font = ImageFont.truetype(FONT, SIZE)
    bold = ImageFont.truetype(BOLD, SIZE)
    wide = ImageFont.truetype(WIDE, SIZE)
    cw = round(font.getlength("M"))
    ch = SIZE + 5
    cols = max(80, max((len(l) for l in lines), default=0))
    pad, bar = 14, 26
    img = Image.new("RGB", (cols * cw + 2 * pad, len(lines) * ch + 2 * pad + bar), BG)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, img.width, bar], fill=(48, 48, 56))
    for i, c in enumerate([(237, 106, 94), (245, 191, 79), (98, 197, 84)]):
        d.ellipse([12 + i * 20, 8, 24 + i * 20, 20], fill=c)
    for y, cells in enumerate(lines):
        for x, (char, fg, bg, b) in enumerate(cells):
            px, py = pad + x * cw, bar + pad + y * ch
            if bg:
                d.rectangle([px, py, px + cw, py + ch], fill=bg)
            if char != " ":
                f = wide if 0x2800 <= ord(char) <= 0x28FF else bold if b else font
                d.text((px, py), char, font=f, fill=fg)
    img.save(out, optimize=True)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        render(parse(f.read()), sys.argv[2])
