"""benchmarks/load_upload.py: the one-line upload text and the p99 verdict."""

from __future__ import annotations

import pytest

from benchmarks.load_upload import P99_LIMIT, one_line_text, upload_comparison

pytestmark = pytest.mark.unit


def _summary(p99_ms: float | None, errors: int = 0, requests: int = 50) -> dict:
    search = {"requests": requests, "errors": errors, "qps": requests / 25, "p50_ms": 100.0, "p99_ms": p99_ms}
    return {"elapsed_s": 25.0, "errors": errors, "endpoints": {"search": search} if p99_ms is not None else {}}


def _upload(state: str = "succeeded", stored: int = 193, found: int = 193) -> dict:
    return {"job_state": state, "chunks_stored": stored, "chunks_found": found}


def test_text_is_exactly_the_size_on_one_line_and_repeatable():
    vocabulary = ["aerofoil", "boundary", "layer", "naïve", "x-ray", "flow"]
    text = one_line_text(vocabulary, 96 * 1024, seed=13)
    assert len(text.encode("ascii")) == 96 * 1024
    assert "\n" not in text and "." not in text and "  " not in text
    # Non-ASCII and non-letter words are left out; only the last word may be cut or padded to the size.
    assert set(text.split()[:-1]) == {"aerofoil", "boundary", "layer", "flow"}
    assert one_line_text(vocabulary, 4096, seed=13) == one_line_text(vocabulary, 4096, seed=13)
    assert one_line_text(vocabulary, 4096, seed=13) != one_line_text(vocabulary, 4096, seed=14)


def test_text_refuses_what_it_cannot_make():
    with pytest.raises(ValueError, match="ASCII"):
        one_line_text(["über", "42"], 100, seed=1)
    with pytest.raises(ValueError, match="size_bytes"):
        one_line_text(["flow"], 0, seed=1)


def test_ratio_and_verdict_at_and_past_the_limit():
    at_limit = upload_comparison(_summary(400.0), _summary(400.0 * P99_LIMIT), _upload())
    assert at_limit["search_p99_ratio"] == pytest.approx(P99_LIMIT) and at_limit["p99_within_limit"] and at_limit["ok"]
    past = upload_comparison(_summary(400.0), _summary(400.0 * P99_LIMIT + 1), _upload())
    assert not past["p99_within_limit"] and past["ok"]  # slow is a verdict, not a failure of the run
    assert past["without_upload"]["search_p99_ms"] == 400.0 and past["during_upload"]["search_requests"] == 50


def test_errors_a_failed_job_or_a_missing_chunk_fail_the_run():
    assert not upload_comparison(_summary(400.0), _summary(500.0, errors=1), _upload())["ok"]
    assert not upload_comparison(_summary(400.0), _summary(500.0), _upload(state="failed: boom"))["ok"]
    assert not upload_comparison(_summary(400.0), _summary(500.0), _upload(found=192))["ok"]
    assert not upload_comparison(_summary(400.0), _summary(500.0), _upload(stored=0, found=0))["ok"]


def test_no_searches_gives_no_ratio_and_no_pass():
    result = upload_comparison(_summary(None), _summary(500.0), _upload())
    assert result["search_p99_ratio"] is None and not result["p99_within_limit"]
