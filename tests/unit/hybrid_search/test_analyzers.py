import pytest

from hybrid_search.analyzers import Analyzer
from hybrid_search.config import AnalyzerConfig
from hybrid_search.errors import ConfigError

pytestmark = pytest.mark.unit


def test_english_lowercases_drops_stopwords_and_stems():
    analyzer = Analyzer(AnalyzerConfig(language="en"))
    assert analyzer.tokenize("The Running dogs of NVIDIA's data-centers") == ["run", "dog", "nvidia", "s", "data", "center"]
    assert analyzer.index_text("Cats, cats!") == "cat cat"


def test_options_turn_off_stopwords_and_stemming():
    analyzer = Analyzer(AnalyzerConfig(language="en", stopwords=False, stem=False))
    assert analyzer.tokenize("The running dogs") == ["the", "running", "dogs"]


def test_spans_point_into_the_original_text():
    text = "Ｆｕｌｌ-width ＡＢＣ and Milvus"
    analyzer = Analyzer(AnalyzerConfig(language="en", stem=False))
    for term, start, end in analyzer.term_spans(text):
        assert analyzer.tokenize(text[start:end]) == [term]


def test_han_characters_in_english_mode_become_single_terms():
    assert Analyzer(AnalyzerConfig(language="en")).tokenize("Milvus向量库") == ["milvus", "向", "量", "库"]


def test_chinese_uses_jieba_search_mode():
    terms = Analyzer(AnalyzerConfig(language="zh")).tokenize("向量数据库支持全文检索。")
    assert "向量" in terms and "数据库" in terms and "数据" in terms and "检索" in terms
    assert "。" not in terms


def test_user_dictionary_keeps_domain_terms_whole(tmp_path):
    plain = Analyzer(AnalyzerConfig(language="zh")).tokenize("混合检索引擎上线")
    assert "混合检索引擎" not in plain
    user_dict = tmp_path / "dict.txt"
    user_dict.write_text("混合检索引擎 100 n\n", encoding="utf-8")
    custom = Analyzer(AnalyzerConfig(language="zh", user_dict=str(user_dict))).tokenize("混合检索引擎上线")
    assert "混合检索引擎" in custom
    # the dictionary is private to that analyzer
    assert Analyzer(AnalyzerConfig(language="zh")).tokenize("混合检索引擎上线") == plain


def test_missing_user_dictionary_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="user_dict"):
        Analyzer(AnalyzerConfig(language="zh", user_dict=str(tmp_path / "nope.txt")))


def test_matched_surfaces_reports_what_the_query_matched():
    analyzer = Analyzer(AnalyzerConfig(language="en"))
    query_terms = set(analyzer.tokenize("running cats"))
    assert analyzer.matched_surfaces("The cat runs; cats ran. RUNNING!", query_terms) == ("cat", "runs", "cats", "RUNNING")
