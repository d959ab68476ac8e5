"""Small documents of every supported kind, generated per test: PDFs with
fpdf2, DOCX with python-docx, the rest as bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

CHINESE = (
    "第一章 总则\n\n"
    "为规范公司管理，保障员工合法权益，制定本手册。本手册适用于公司全体员工！"
    "员工是否需要遵守？需要；所有员工均须遵守。\n\n"
    "第二章 考勤\n\n"
    "工作时间为每周一至周五。迟到三次以上者，按公司规定处理。"
)
TRADITIONAL = "臺灣積體電路製造股份有限公司年度報告。營業收入與獲利皆創新高！明年展望如何？審慎樂觀。"

HTML = """<!DOCTYPE html>
<html><head><title>Quarterly Report</title>
<style>body { color: red; }</style>
<script>var tracking = "SCRIPT_TEXT";</script></head>
<body>
<header><div class="logo">SITE_HEADER</div></header>
<nav><ul><li><a href="/">Home</a></li><li><a href="/a">About</a></li></ul></nav>
<ul class="menu"><li><a href="/x">Menu one</a></li><li><a href="/y">Menu two</a></li>
  <li><a href="/z">Menu three</a></li></ul>
<div style="display: none">HIDDEN_TEXT</div>
<h1>Quarterly Report</h1>
<p>Revenue grew strongly this quarter. Margins   improved.<br>A new line.</p>
<h2>Segments</h2>
<p>Data center led the growth.</p>
<table>
  <tr><th>Segment</th><th>Revenue</th><th></th></tr>
  <tr><td>Data Center</td><td>$</td><td>3,833</td></tr>
  <tr><td>Gaming</td><td>$</td><td>1,574</td></tr>
</table>
<h3>Outlook</h3>
<ul><li>Growth continues</li><li>Costs stable<ul><li>Nested point</li></ul></li></ul>
<pre>code   kept
  as is</pre>
<footer>SITE_FOOTER copyright</footer>
</body></html>
"""

MARKDOWN = """---
title: Engine Guide
author: someone
---

# Install

Run the installer. It takes a minute.

## Configure

Set the options:

- uri
- token

```python
x = 1

y = 2
```

| Option | Default |
|--------|---------|
| uri    | kb.db   |
| token  | none    |

# Use

Query the engine.
"""


def _make_pdf(path: Path, pages: list[str], *, user_password: str | None = None) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    if user_password is not None:
        pdf.set_encryption(owner_password="owner-secret", user_password=user_password)
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    path.write_bytes(bytes(pdf.output()))
    return path


def _make_docx(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.core_properties.title = "Employee Handbook"
    d.add_paragraph("Welcome to the company.")
    d.add_heading("Leave", level=1)
    d.add_paragraph("Annual leave is 20 days. Unused days carry over.")
    d.add_heading("Sick leave", level=2)
    d.add_paragraph("Report sickness before 9am.")
    d.add_paragraph("Call your manager", style="List Bullet")
    table = d.add_table(rows=3, cols=3)
    for r, row in enumerate([("Grade", "Days", "Notes"), ("A", "20", "standard"), ("B", "25", "senior")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_heading("Expenses", level=1)
    d.add_paragraph("Submit receipts within 30 days.")
    d.save(str(path))
    return path


@pytest.fixture
def write(tmp_path: Path):
    """write(name, content) -> Path; str content is written as UTF-8."""

    def _write(name: str, content: bytes | str) -> Path:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return p

    return _write


@pytest.fixture
def make_pdf():
    """make_pdf(path, pages, user_password=None) -> Path: one page per string."""
    return _make_pdf


@pytest.fixture
def docx_file(tmp_path: Path) -> Path:
    return _make_docx(tmp_path / "handbook.docx")


@pytest.fixture
def samples():
    """The text samples above, by name."""
    return {"chinese": CHINESE, "traditional": TRADITIONAL, "html": HTML, "markdown": MARKDOWN}
