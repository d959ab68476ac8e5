"""The search page in a real headless browser (Debian's chromium + chromedriver,
driven by selenium): type a query, see results, toggle a path, see them change."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

selenium = pytest.importorskip("selenium", reason="the browser test needs selenium (pip install selenium)")
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait


@pytest.fixture(scope="module")
def live_server(api_engine, api_settings, serve_app):
    """The app over the shared engine, served on loopback."""
    from hybrid_search.api import create_app

    yield from serve_app(create_app(api_settings, engine=api_engine))


def _results(driver) -> list[dict]:
    """What the page shows: per hit its doc id, the paths in its score table, and marked terms."""
    hits = []
    for item in driver.find_elements(By.CSS_SELECTOR, "#results li.hit"):
        hits.append(
            {
                "doc_id": item.get_attribute("data-doc-id"),
                "paths": [row.get_attribute("data-path") for row in item.find_elements(By.CSS_SELECTOR, "tr.path-row")],
                "marks": [m.text for m in item.find_elements(By.TAG_NAME, "mark")],
            }
        )
    return hits


def _search_done(driver, timeout: float = 30) -> None:
    WebDriverWait(driver, timeout).until(lambda d: d.find_element(By.ID, "results").get_attribute("data-state") in ("done", "error"))
    state = driver.find_element(By.ID, "results").get_attribute("data-state")
    assert state == "done", driver.find_element(By.ID, "status").text


def test_type_query_see_results_toggle_path_see_change(live_server, browser):
    browser.get(live_server + "/ui/")
    WebDriverWait(browser, 30).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#collection option[value='docs']")))
    Select(browser.find_element(By.ID, "collection")).select_by_value("docs")
    Select(browser.find_element(By.ID, "rerank")).select_by_value("off")

    box = browser.find_element(By.ID, "query")
    box.send_keys("cat on the mat")
    browser.find_element(By.ID, "search-button").click()
    _search_done(browser)
    before = _results(browser)
    assert before, "no results shown"
    assert before[0]["doc_id"] == "cats"
    assert before[0]["paths"] == ["bm25", "sparse", "dense"]
    # Matched terms are highlighted in the text.
    assert {"cat", "mat"} <= set(before[0]["marks"])
    assert "paths: bm25, sparse, dense" in browser.find_element(By.ID, "status").text

    # Turn the dense and sparse paths off: the page re-runs the query on its own.
    browser.find_element(By.ID, "path-dense").click()
    _search_done(browser)
    browser.find_element(By.ID, "path-sparse").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "results").get_attribute("data-paths") == "bm25")
    _search_done(browser)
    after = _results(browser)
    assert after and all(hit["paths"] == ["bm25"] for hit in after)
    assert after != before
    # BM25 alone returns only documents that share a term with the query.
    assert {hit["doc_id"] for hit in after} <= {"cats", "dogs"}
    assert "paths: bm25" in browser.find_element(By.ID, "status").text


def test_page_shows_errors_and_never_renders_markup(live_server, browser, client, helpers):
    # A document whose text is HTML: it must show as text, not become elements.
    records = [{"id": "xss", "text": "<img src=x onerror=alert(1)> cat <b>bold</b>", "title": "<script>alert(1)</script>"}]
    job = client.post("/v1/collections/docs/documents", json={"records": records}).json()
    assert helpers.wait_for_job(client, job)["state"] == "succeeded"
    try:
        browser.get(live_server + "/ui/")
        WebDriverWait(browser, 30).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#collection option[value='docs']")))
        Select(browser.find_element(By.ID, "rerank")).select_by_value("off")
        for box_id in ("path-dense", "path-sparse"):
            box = browser.find_element(By.ID, box_id)
            if box.is_selected():
                box.click()
        browser.find_element(By.ID, "query").send_keys("img onerror bold")
        browser.find_element(By.ID, "search-button").click()
        _search_done(browser)
        hit = browser.find_element(By.CSS_SELECTOR, "#results li.hit[data-doc-id='xss']")
        assert "<img src=x onerror=alert(1)>" in hit.find_element(By.CSS_SELECTOR, ".text").text
        assert not hit.find_elements(By.TAG_NAME, "img") and not hit.find_elements(By.TAG_NAME, "script")
        # An error from the API shows as a message, not a broken page.
        query = browser.find_element(By.ID, "query")
        query.clear()
        browser.execute_script("arguments[0].value = arguments[1]", query, "x" * 1100)  # over max_query_chars
        browser.find_element(By.ID, "search-button").click()
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "results").get_attribute("data-state") == "error")
        assert "validation_error" in browser.find_element(By.ID, "status").text
    finally:
        client.delete("/v1/collections/docs/documents/xss")
