"""The search page over a folder of documents, in headless chromium: search,
see duplicates folded and the matching passage, narrow the hits with the filter
field, open a hit's source file (at its page for a PDF), and a screenshot.

The screenshot is written to the test's temporary folder; with
``HYBRID_SEARCH_SCREENSHOT=docs/search-page.png`` it is also copied there (how
the one in docs/ is made).
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hybrid_search import (
    Engine,
    RuntimeConfig,
    StoreConfig,
)

pytestmark = pytest.mark.integration

pytest.importorskip("selenium", reason="the browser test needs selenium (pip install selenium)")
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

REPEATED = (
    "Blank check stock must be kept in a locked file cabinet with restricted access, and the standing "
    "trustee must reconcile the bank account every month."
)
SECTIONS = [
    ("Receipts", "Receipts are deposited within one business day and logged with the case number and the payer."),
    ("Disbursements", "Disbursements are paid to creditors monthly from the trust account after the plan is confirmed."),
    ("Records", "The trustee keeps case records for seven years and makes them available to the auditors."),
    ("Staff", "Employees of the trustee may not hold a financial interest in any case the trustee administers."),
]
PDF_PAGES = [
    "Leave policy. Annual leave is twenty days a year for every employee of the standing trustee.",
    "Sick leave. Employees report sick leave to their manager on the first day and bring a note after three days.",
    "Parental leave. Parents take up to twelve weeks of paid leave within a year of a birth or adoption.",
]
NOTES = "# Audit notes\n\nThe auditors checked the bank account reconciliation and the blank check stock in March.\n"


def _documents(folder: Path) -> None:
    import docx
    from fpdf import FPDF

    folder.mkdir(parents=True)
    document = docx.Document()
    document.core_properties.title = "Trustee handbook"
    for heading, text in SECTIONS:
        # Each section repeats the paragraph on check stock, as the DOJ handbook does.
        document.add_heading(heading, level=1)
        document.add_paragraph(text)
        document.add_paragraph(REPEATED)
    document.save(str(folder / "trustee-handbook.docx"))
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in PDF_PAGES:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    (folder / "leave-policy.pdf").write_bytes(bytes(pdf.output()))
    (folder / "audit-notes.md").write_text(NOTES, encoding="utf-8")


READ_KEY = "page-test-read-key-0123456789"


@pytest.fixture(scope="module")
def handbook_engine(tiny_models, tmp_path_factory):
    """A collection indexed from a folder named like the document root."""
    from indexers.chunks import ChunkingConfig
    from indexers.pipeline import IngestConfig, ingest

    base = tmp_path_factory.mktemp("page")
    folder = base / "handbooks"
    _documents(folder)
    engine = Engine(StoreConfig(uri=str(base / "page.db"), timeout_s=30), runtime=RuntimeConfig(device="cpu"))
    engine.create_collection(tiny_models.hybrid_collection("handbooks"))
    # 100 tiny-model tokens: each paragraph (the repeated one is 83) a chunk of its own.
    summary = ingest(engine, "handbooks", [folder], IngestConfig(chunking=ChunkingConfig(max_tokens=100, overlap_tokens=0)))
    assert not summary.failed and summary.documents_written == 3, summary
    yield engine, folder
    engine.close()


def _serve(serve_app, tiny_models, handbook_engine, **settings):
    from hybrid_search.api import ApiSettings, create_app

    engine, folder = handbook_engine
    values = {
        "dense_model": str(tiny_models.dense),
        "dense_kind": "sentence-transformers",
        "sparse_model": str(tiny_models.splade),
        "sparse_kind": "splade",
        "device": "cpu",
        "document_roots": {"handbooks": folder},
    }
    return serve_app(create_app(ApiSettings(**values, **settings), engine=engine))


@pytest.fixture(scope="module")
def handbook_server(serve_app, tiny_models, handbook_engine):
    """The collection served with its folder as a document root of the same
    name (so hits link to their files), no API key."""
    yield from _serve(serve_app, tiny_models, handbook_engine)


@pytest.fixture()
def keyed_server(serve_app, tiny_models, handbook_engine):
    """The same behind a read key."""
    yield from _serve(serve_app, tiny_models, handbook_engine, read_api_keys=[READ_KEY])


def _search(driver, query: str, filter_text: str = "") -> list[dict]:
    box = driver.find_element(By.ID, "query")
    box.clear()
    box.send_keys(query)
    field = driver.find_element(By.ID, "filter")
    field.clear()
    field.send_keys(filter_text)
    driver.find_element(By.ID, "search-button").click()
    return _results(driver)


def _results(driver) -> list[dict]:
    """What the page shows once the search in flight is done."""
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "results").get_attribute("data-state") in ("done", "error"))
    assert driver.find_element(By.ID, "results").get_attribute("data-state") == "done", driver.find_element(By.ID, "status").text
    hits = []
    for item in driver.find_elements(By.CSS_SELECTOR, "#results li.hit"):
        links = item.find_elements(By.CSS_SELECTOR, ".meta a.source")
        folded = item.find_elements(By.CSS_SELECTOR, "details.folded summary")
        hits.append(
            {
                "doc_id": item.get_attribute("data-doc-id"),
                "meta": item.find_element(By.CSS_SELECTOR, ".meta").text,
                "snippet": item.find_element(By.CSS_SELECTOR, ".snippet").text,
                "marks": [m.text for m in item.find_elements(By.CSS_SELECTOR, ".snippet mark")],
                "link": links[0].get_attribute("href") if links else None,
                "folded": folded[0].text if folded else None,
            }
        )
    return hits


def test_search_filter_open_source_and_screenshot(handbook_server, browser, tmp_path):
    browser.get(handbook_server + "/ui/")
    WebDriverWait(browser, 30).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#collection option[value='handbooks']")))
    Select(browser.find_element(By.ID, "collection")).select_by_value("handbooks")

    query = "blank check stock bank account leave"
    hits = _search(browser, query)
    doc_ids = [hit["doc_id"] for hit in hits]
    assert {"handbooks/trustee-handbook.docx", "handbooks/leave-policy.pdf", "handbooks/audit-notes.md"} <= set(doc_ids)
    # The paragraph held four times is one hit that says so.
    repeated = [hit for hit in hits if "Blank check stock" in hit["snippet"]]
    assert len(repeated) == 1 and repeated[0]["folded"] == "+3 duplicates folded"
    assert {"Blank", "check", "stock"} <= set(repeated[0]["marks"])
    # The document path shows once per hit, as the link that opens it.
    for hit in hits:
        assert hit["meta"].count(hit["doc_id"]) == 1
        assert hit["link"] is not None and hit["link"].startswith(handbook_server + "/v1/sources/handbooks/")
    pdf_hits = [hit for hit in hits if hit["doc_id"].endswith(".pdf")]
    assert pdf_hits and all("#page=" in hit["link"] and "page " in hit["meta"] for hit in pdf_hits)

    # Switched off, every copy comes back (the page re-runs the query at once).
    browser.find_element(By.ID, "collapse").click()
    every = _results(browser)
    assert len([hit for hit in every if "Blank check stock" in hit["snippet"]]) == 4
    browser.find_element(By.ID, "collapse").click()
    _results(browser)

    # The filter narrows the hits: words in the path, or FIELD OP VALUE.
    only_pdf = _search(browser, query, "leave-policy")
    assert only_pdf and {hit["doc_id"] for hit in only_pdf} == {"handbooks/leave-policy.pdf"}
    assert len(only_pdf) < len(hits)
    later_pages = _search(browser, query, "page >= 2")
    assert later_pages and all(hit["doc_id"].endswith(".pdf") for hit in later_pages)
    assert all(int(hit["meta"].split("page ")[1].split()[0]) >= 2 for hit in later_pages)
    bad = browser.find_element(By.ID, "filter")
    bad.clear()
    bad.send_keys("page >= many")
    browser.find_element(By.ID, "search-button").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "results").get_attribute("data-state") == "error")
    assert "filters" in browser.find_element(By.ID, "status").text

    # A source link opens the file; a PDF's opens at the hit's page.
    hits = _search(browser, query)
    notes = next(hit for hit in hits if hit["doc_id"] == "handbooks/audit-notes.md")
    page = browser.current_window_handle
    link = browser.find_element(By.CSS_SELECTOR, "#results li.hit[data-doc-id='handbooks/audit-notes.md'] .meta a.source")
    link.click()
    WebDriverWait(browser, 30).until(lambda d: len(d.window_handles) == 2)
    opened = next(handle for handle in browser.window_handles if handle != page)
    browser.switch_to.window(opened)
    WebDriverWait(browser, 30).until(lambda d: "auditors checked" in d.find_element(By.TAG_NAME, "body").text)
    assert browser.current_url == notes["link"]
    browser.close()
    browser.switch_to.window(page)
    pdf_url = next(hit["link"] for hit in hits if hit["doc_id"].endswith(".pdf"))
    with urllib.request.urlopen(pdf_url.split("#")[0]) as response:
        assert response.headers["content-type"] == "application/pdf" and response.read(5) == b"%PDF-"

    # The page after a search, for the docs.
    shot = tmp_path / "search-page.png"
    browser.set_window_size(1200, 1000)
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000
    target = os.environ.get("HYBRID_SEARCH_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)


def _open_in_new_window(driver, link) -> str:
    """Click a link that opens a window; returns that window's body text and closes it."""
    page = driver.current_window_handle
    link.click()
    WebDriverWait(driver, 30).until(lambda d: len(d.window_handles) == 2)
    driver.switch_to.window(next(handle for handle in driver.window_handles if handle != page))
    try:
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").text.strip())
        return driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.close()
        driver.switch_to.window(page)


def test_with_an_api_key_the_source_opens_through_the_key(keyed_server, browser):
    # A plain link cannot carry the key: the server refuses it...
    request = urllib.request.Request(keyed_server + "/v1/sources/handbooks/audit-notes.md")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 401
    # ...so the page fetches the file with the key and opens it from memory.
    browser.get(keyed_server + "/ui/")
    key = browser.find_element(By.ID, "api-key")
    key.send_keys(READ_KEY)
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
    WebDriverWait(browser, 30).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#collection option[value='handbooks']")))
    _search(browser, "auditors bank account reconciliation")
    link = browser.find_element(By.CSS_SELECTOR, "#results li.hit[data-doc-id='handbooks/audit-notes.md'] .meta a.source")
    assert "auditors checked the bank account" in _open_in_new_window(browser, link)
    browser.execute_script("sessionStorage.clear()")
