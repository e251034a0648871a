"""The student's discussion: a Markdown file made from a template once, then only ever read.

Usage (from make_report.py and make_submission.py):
    created = ensure(path)      # copies templates/discussion.md to path when path does not exist
    blocks = parse(read(path))  # [Block("h", "Discussion", 1), Block("p", "..."), ...]
    if unwritten(blocks): ...   # still only the template's placeholders

The Markdown understood is deliberately small: `#`/`##`/`###` headings, paragraphs separated by
blank lines, `- ` (or `* `) bullet lists, `1. ` numbered lists, **bold**, *italic*, `code` and
HTML comments (left out). Everything else is kept as plain text.
"""
import html
import os
import re
import shutil
from dataclasses import dataclass, field

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates", "discussion.md")
PLACEHOLDER = "[Student: write your answer here.]"
QUESTIONS = (
    "Did the results improve after combining the outputs?",
    "Are there differences/similarities between the best and worst classes of the models? Can "
    "anything be said about whether particular action classes are discriminated more by spatial "
    "information versus temporal information?",
    "Are there any notable examples among the most confused classes?",
)

_HEADING = re.compile(r"(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"[-*+]\s+(.*)")
_NUMBERED = re.compile(r"\d+[.)]\s+(.*)")
_COMMENT = re.compile(r"<!--.*?-->", re.S)


@dataclass
class Block:
    """One block of the discussion: kind "h" (heading, `level` 1-6), "p" (paragraph), "ul" or "ol"
    (list, `items`). Text is raw Markdown inline text (not yet escaped)."""
    kind: str
    text: str = ""
    level: int = 0
    items: list = field(default_factory=list)


def ensure(path: str) -> bool:
    """Create `path` from the template when it does not exist -> True if it was created. An existing
    file is never touched: it is the student's text."""
    if os.path.exists(path):
        return False
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # exclusive create: a file that appears meanwhile (an editor saving) is not clobbered
    with open(TEMPLATE, "rb") as src, open(path, "xb") as dst:
        shutil.copyfileobj(src, dst)
    return True


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def parse(text: str) -> list:
    """Markdown text -> [Block]. Comments are removed first; a list item continues over the
    following indented (or non-blank, non-list) lines."""
    blocks, para, items, kind = [], [], [], None

    def flush():
        nonlocal para, items, kind
        if para:
            blocks.append(Block("p", " ".join(para)))
        if items:
            blocks.append(Block(kind, items=[" ".join(i) for i in items]))
        para, items, kind = [], [], None

    for raw in _COMMENT.sub("", text).splitlines():
        line = raw.strip()
        if not line:
            flush()
            continue
        heading = _HEADING.fullmatch(line)
        bullet, numbered = _BULLET.fullmatch(line), _NUMBERED.fullmatch(line)
        if heading:
            flush()
            blocks.append(Block("h", heading.group(2), level=len(heading.group(1))))
        elif bullet or numbered:
            new_kind = "ul" if bullet else "ol"
            if para or (kind and kind != new_kind):
                flush()
            kind = new_kind
            items.append([(bullet or numbered).group(1)])
        elif items:
            items[-1].append(line)
        else:
            para.append(line)
    flush()
    return blocks


def unwritten(blocks: list) -> bool:
    """True while the discussion holds no text of the student's: every paragraph and list item is
    the template's placeholder (headings alone are not an answer)."""
    texts = [b.text for b in blocks if b.kind == "p"] + [i for b in blocks for i in b.items]
    return all(t.strip() == PLACEHOLDER for t in texts)


def placeholders(blocks: list) -> int:
    """How many answers still are the placeholder."""
    return sum(1 for b in blocks if b.kind == "p" and b.text.strip() == PLACEHOLDER)


def inline_markup(text: str, mono: str = "Courier") -> str:
    """Markdown inline text -> reportlab paragraph markup: &, < and > escaped first (the student's
    text is never read as markup), then **bold**, *italic*, _italic_ and `code` (in font `mono`)."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", rf'<font face="{mono}">\1</font>', out)
    out = re.sub(r"\*\*(?=\S)(.+?)(?<=\S)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"(?<![*\w])\*(?=\S)(.+?)(?<=\S)\*(?![*\w])", r"<i>\1</i>", out)
    return re.sub(r"(?<![_\w])_(?=\S)(.+?)(?<=\S)_(?![_\w])", r"<i>\1</i>", out)


def to_markdown(blocks: list, shift: int = 1) -> list:
    """[Block] -> Markdown lines for the report's twin, headings `shift` levels deeper (the
    discussion's `#` is a section of the report, whose own title is its only `#`)."""
    lines = []
    for b in blocks:
        if b.kind == "h":
            lines += ["#" * min(6, b.level + shift) + " " + b.text, ""]
        elif b.kind == "p":
            lines += [b.text, ""]
        else:
            numbers = [f"{i}. " for i in range(1, len(b.items) + 1)]
            marks = ["- "] * len(b.items) if b.kind == "ul" else numbers
            lines += [m + t for m, t in zip(marks, b.items)] + [""]
    return lines
