"""The PDF's building blocks (reportlab platypus): fonts, styles, wrapping tables, figures, notes,
the student's Markdown, and the document itself.

Usage (make_report.py):
    st = layout.styles()
    story = [layout.para("Title", st, "title")] + layout.table(header, rows, caption, st, width)
    pages = layout.build("report.pdf", story, title="...")

Text flows over pages: tables repeat their header row when they continue on the next page and
their cells wrap, so nothing runs off a page or into the next cell.
"""
import os

import discussion
import matplotlib
from reportlab.lib import colors
from reportlab.lib.fonts import addMapping
from reportlab.lib.pagesizes import letter
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import inch
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Image,
    KeepTogether,
    ListFlowable,
    ListItem,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

# matplotlib's own font: there wherever matplotlib is, the figures use it too, and it covers the
# Unicode a student may type (the 14 standard PDF fonts stop at Latin-1)
FONT = "DejaVuSans"
MONO = "DejaVuSansMono"
PAGE = letter  # US letter, portrait; fits A4 when printed to fit
MARGIN = 0.7 * inch
FRAME_PAD = 6  # platypus's frame keeps this much padding inside each margin
CELL_PAD = 4  # points either side of a table cell's text
RED = colors.HexColor("#9b1c1c")
GREY_RULE, GREY_HEAD, GREY_ROW = (colors.HexColor(c) for c in ("#b0b0b0", "#e8e8e8", "#f6f6f6"))


def register_fonts() -> None:
    """Embed DejaVu under FONT and MONO, with their bold and italic faces for <b> and <i>."""
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    ttf = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    faces = (("", 0, 0), ("-Bold", 1, 0), ("-Oblique", 0, 1), ("-BoldOblique", 1, 1))
    for family in (FONT, MONO):
        for suffix, bold, italic in faces:
            name = family + suffix
            pdfmetrics.registerFont(TTFont(name, os.path.join(ttf, name + ".ttf")))
            addMapping(family, bold, italic, name)


def styles() -> dict:
    """The paragraph styles of the report, by name (fonts registered first)."""
    register_fonts()
    bold = FONT + "-Bold"
    body = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12, spaceAfter=4)
    # headings stay with what follows them: never the last line of a page
    heading = dict(fontName=bold, keepWithNext=1)
    return {
        "body": body,
        "title": ParagraphStyle("title", body, fontName=bold, fontSize=15, leading=19,
                                spaceAfter=6),
        "h1": ParagraphStyle("h1", body, fontSize=12.5, leading=16, spaceBefore=10, spaceAfter=5,
                             **heading),
        "h2": ParagraphStyle("h2", body, fontSize=10.5, leading=13.5, spaceBefore=8, spaceAfter=3,
                             **heading),
        "h3": ParagraphStyle("h3", body, fontSize=9.5, leading=12, spaceBefore=6, spaceAfter=2,
                             **heading),
        "caption": ParagraphStyle("caption", body, fontSize=8.5, leading=11, spaceBefore=6,
                                  spaceAfter=3, **heading),
        "figcaption": ParagraphStyle("figcaption", body, fontSize=8, leading=10.5,
                                     textColor=colors.HexColor("#333333")),
        "bullet": ParagraphStyle("bullet", body, leftIndent=12, bulletIndent=2, spaceAfter=2,
                                 bulletFontName=FONT),
        "cell": ParagraphStyle("cell", body, fontSize=7.8, leading=9.6, spaceAfter=0),
        "head": ParagraphStyle("head", body, fontName=bold, fontSize=7.8, leading=9.6,
                               spaceAfter=0),
        "note": ParagraphStyle("note", body, fontName=bold, fontSize=10, leading=13, spaceAfter=0,
                               textColor=RED),
        "placeholder": ParagraphStyle("placeholder", body, fontName=FONT + "-Oblique",
                                      textColor=RED),
    }


def escape(text: str) -> str:
    """Plain text -> paragraph markup that shows it as it is."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def para(text: str, st: dict, style: str = "body") -> Paragraph:
    """A paragraph of plain text (never read as markup)."""
    return Paragraph(escape(text), st[style])


def bullets(lines: list, st: dict) -> list:
    return [Paragraph(escape(x), st["bullet"], bulletText="\u2022") for x in lines]


def column_widths(columns: list, header: list, avail: float, size: float) -> list[float]:
    """Widths (points) of a table's columns that fit `avail`: each its natural width when they all
    fit; otherwise every column keeps at least its longest word and the rest of the width goes to
    the columns in proportion to how much more they would take."""
    width = lambda s, font=FONT: pdfmetrics.stringWidth(s, font, size) + 2 * CELL_PAD
    natural, least = [], []
    for head, cells in zip(header, columns):
        natural.append(max([width(head, FONT + "-Bold")] + [width(c) for c in cells]))
        words = [width(w, FONT + "-Bold") for w in head.split()]
        words += [width(w) for c in cells for w in c.split()]
        least.append(max(words + [2 * CELL_PAD]))
    if sum(natural) <= avail:
        return natural
    if sum(least) >= avail:  # not even the words fit: shrink alike (a long word then breaks)
        return [w * avail / sum(least) for w in least]
    extra, room = [n - m for n, m in zip(natural, least)], avail - sum(least)
    return [m + room * e / sum(extra) for m, e in zip(least, extra)]


def table(header: list, rows: list, caption: str, st: dict, avail: float) -> list:
    """A captioned table -> [caption, Table]: cells wrap, the header row repeats on a new page."""
    out = [para(caption, st, "caption")]
    if not rows:
        return out + [para("none", st, "cell")]
    columns = [list(c) for c in zip(*rows)]
    widths = column_widths(columns, header, avail, st["cell"].fontSize)
    data = [[para(h, st, "head") for h in header]]
    data += [[para(c, st, "cell") for c in r] for r in rows]
    t = Table(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
    t.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.4, GREY_RULE),
        ("BACKGROUND", (0, 0), (-1, 0), GREY_HEAD),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, GREY_ROW]),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), CELL_PAD), ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PAD),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
    ]))
    return out + [t, Spacer(1, 6)]


def kept(flowables: list) -> KeepTogether:
    """Flowables on one page when they fit. (Flat lists only: a KeepTogether inside another
    always asks for a page break.)"""
    return KeepTogether(flowables)


def image(path: str, max_w: float, max_h: float) -> Image:
    """The PNG at `path`, as large as fits max_w x max_h, its aspect ratio kept."""
    w, h = ImageReader(path).getSize()
    scale = min(max_w / w, max_h / h)
    return Image(path, width=w * scale, height=h * scale)


def note(text: str, st: dict, avail: float) -> list:
    """A red-framed note across the page."""
    box = Table([[para(text, st, "note")]], colWidths=[avail], hAlign="LEFT")
    box.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 1.5, RED),
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#fdecec")),
        ("LEFTPADDING", (0, 0), (-1, -1), 8), ("RIGHTPADDING", (0, 0), (-1, -1), 8),
        ("TOPPADDING", (0, 0), (-1, -1), 6), ("BOTTOMPADDING", (0, 0), (-1, -1), 7),
    ]))
    return [Spacer(1, 4), box, Spacer(1, 8)]


def markdown_flowables(blocks: list, st: dict) -> list:
    """discussion.Block list -> flowables: `#` as a section heading, `##` below it, ...; a
    paragraph still holding the template's placeholder stands out in red."""
    markup = lambda text: discussion.inline_markup(text, MONO)
    out = []
    for b in blocks:
        if b.kind == "h":
            out.append(Paragraph(markup(b.text), st[f"h{min(b.level, 3)}"]))
        elif b.kind == "p":
            style = "placeholder" if b.text.strip() == discussion.PLACEHOLDER else "body"
            out.append(Paragraph(markup(b.text), st[style]))
        else:
            items = [ListItem(Paragraph(markup(t), st["body"]), leftIndent=14) for t in b.items]
            kind = {"bulletType": "bullet"} if b.kind == "ul" else {"bulletType": "1", "start": 1}
            out.append(ListFlowable(items, leftIndent=14, bulletFontName=FONT, bulletFontSize=8,
                                    **kind))
    return out


def frame_size() -> tuple[float, float]:
    """(width, height) in points that a flowable may take on a page."""
    return (PAGE[0] - 2 * MARGIN - 2 * FRAME_PAD, PAGE[1] - 2 * MARGIN - 2 * FRAME_PAD)


def build(path: str, story: list, title: str) -> int:
    """Lay the story out on pages with a page number at the foot -> number of pages."""
    pages = []

    def footer(canvas, doc):
        pages.append(doc.page)
        canvas.saveState()
        canvas.setFont(FONT, 7)
        canvas.setFillGray(0.45)
        canvas.drawRightString(PAGE[0] - MARGIN, 0.45 * inch, f"page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(path, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN,
                            topMargin=MARGIN, bottomMargin=MARGIN, title=title,
                            subject="video-level results")
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return len(pages)
