"""Tiny, real, randomly initialised models built from config at test time.

Nothing is downloaded: a WordPiece vocabulary (~1050 tokens) is built
deterministically from a small built-in English + Chinese corpus using the
``tokenizers`` library's BERT normaliser / pre-tokenizer (see ``_train_vocab``
for why its trainer is not used), and every model is a 2-layer BERT
(hidden 32) created from a ``BertConfig``.  The folders are laid out exactly as the
real libraries expect, so tests can load them through the same code paths
production uses:

* ``dense``          -> ``sentence_transformers.SentenceTransformer`` (32-d, normalised)
* ``m3``             -> ``FlagEmbedding.BGEM3FlagModel`` (dense + sparse + colbert heads)
* ``splade``         -> ``sentence_transformers.SparseEncoder`` (MLM + SPLADE max pooling)
* ``cross_encoder``  -> ``sentence_transformers.CrossEncoder`` and ``FlagEmbedding.FlagReranker``
* ``tokenizer_dir``  -> ``transformers.AutoTokenizer`` (the shared WordPiece tokenizer)

Usage::

    from tests.tiny_models import build_tiny_models
    models = build_tiny_models(tmp_path)
    SentenceTransformer(str(models.dense), device="cpu")

Weights are random but deterministic (the same seed and corpus give
byte-identical folders), and nudged to behave *lexically* so retrieval tests
get sensible rankings: SPLADE activates mostly the input tokens (~20 non-zeros
for a short text) and M3's lexical weights cover every non-special input
token; dense vectors are only weakly lexical.  Do not assert on exact scores.
The build is idempotent: a completed build in ``root`` is reused, and a
file lock makes concurrent builds (e.g. pytest-xdist workers) safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from hybrid_search import CollectionConfig

__all__ = [
    "BUILD_VERSION",
    "CORPUS",
    "HIDDEN_SIZE",
    "SEED",
    "TinyModels",
    "build_tiny_models",
    "describe",
]

#: Bump whenever the on-disk layout or any hyper-parameter below changes, so
#: stale builds in a reused ``root`` are rebuilt instead of silently reused.
BUILD_VERSION = "2"
SEED = 1234

HIDDEN_SIZE = 32
NUM_LAYERS = 2
NUM_HEADS = 2
INTERMEDIATE_SIZE = 64
MAX_POSITIONS = 512
MAX_SEQ_LENGTH = 512

#: Positive bias of the M3 sparse head: relu(w.h + bias) > 0 for most tokens,
#: so almost every non-special token gets a lexical weight.
M3_SPARSE_BIAS = 1.0

#: Word embeddings are scaled up by this factor so that, after the embedding
#: LayerNorm, a token's hidden state is dominated by its own (random) word
#: vector rather than by position / type embeddings or the random layers.
#: Random models then behave *lexically*: texts sharing words get closer dense
#: vectors, and SPLADE activates the input tokens (see SPLADE_BIAS).
WORD_EMBEDDING_SCALE = 5.0

#: MLM output bias of the SPLADE model.  With WORD_EMBEDDING_SCALE the logit
#: of an input token is ~3 and the others ~N(0, 0.6); -1.7 keeps the input
#: tokens and a handful of others: ~20-50 non-zeros per short text instead of
#: ~95 % of the vocabulary.  Special tokens get -100 (never activated).
SPLADE_BIAS = -1.7

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4

_MARKER = ".tiny-models-complete"
_LOCK = ".tiny-models.lock"

# Small bilingual corpus.  Keep the words tests are likely to use (cat, dog,
# milvus, retrieval, revenue, 数据, 检索, 模型, ...) so they tokenize to whole
# word pieces instead of [UNK] / many sub-pieces.
CORPUS: tuple[str, ...] = (
    # English
    "The cat sat on the mat.",
    "A dog chased the cat around the garden.",
    "The quick brown fox jumps over the lazy dog.",
    "Milvus is an open source vector database built for similarity search.",
    "Hybrid search combines dense retrieval with sparse lexical retrieval.",
    "Dense retrieval encodes queries and documents into embedding vectors.",
    "Sparse retrieval uses BM25 or SPLADE term weights over an inverted index.",
    "A cross encoder reranks the top candidates returned by the retriever.",
    "Reciprocal rank fusion merges ranked lists from several retrievers.",
    "The company reported record revenue and profit in the fourth quarter.",
    "Quarterly revenue grew twelve percent while operating costs fell.",
    "Annual revenue, net income and earnings per share beat forecasts.",
    "Investors expect revenue growth to slow next year.",
    "The model was trained on a large corpus of web pages and books.",
    "Fine tuning the embedding model improved recall at ten.",
    "We evaluate retrieval quality with recall, precision and ndcg.",
    "The index stores one billion vectors across many shards and segments.",
    "Each collection has a schema with a primary key and vector fields.",
    "Insert, delete, upsert and query operations are supported by the client.",
    "The search request sets a limit, a metric type and an output field.",
    "Cosine similarity and inner product are common distance metrics.",
    "Approximate nearest neighbor search trades accuracy for speed.",
    "HNSW and IVF are popular index types for vector search.",
    "The tokenizer splits text into word pieces and maps them to ids.",
    "Python code loads the data, builds the index and runs the benchmark.",
    "My cat likes to sleep in the sun; my dog likes to play outside.",
    "Cats and dogs are the most popular pets in the world.",
    "The weather today is sunny with a light wind from the west.",
    "She read a book about machine learning and information retrieval.",
    "Large language models answer questions using retrieved documents.",
    "Retrieval augmented generation grounds the answer in source passages.",
    "The server returned an error because the collection was not loaded.",
    "Latency and throughput were measured on a single machine.",
    "Batch size, learning rate and warmup steps control training.",
    "The apple is red, the banana is yellow and the grape is purple.",
    "Users search for products, news, images and music every day.",
    "Numbers like 1, 2, 3, 10, 42, 100 and 2024 appear in text too.",
    "Document chunks overlap so that sentences are not cut in half.",
    "A query about cat food should not return documents about stock prices.",
    "The hybrid engine scores each document with weighted dense and sparse scores.",
    "Vector embeddings capture semantic meaning beyond exact keyword matching.",
    "Keyword search still wins for rare names, product codes and identifiers.",
    "The warehouse shipped twenty thousand orders during the holiday season.",
    "Doctors reviewed the patient's symptoms, medication and blood pressure.",
    "The football team scored three goals in the second half of the match.",
    "Engineers deployed the new release to production after testing it.",
    "The kitchen smelled of fresh bread, coffee, garlic and roasted vegetables.",
    "Students submitted their homework before the deadline on Friday evening.",
    "The river flows through mountains, forests and villages to the ocean.",
    "A monitoring dashboard shows memory usage, disk space and network traffic.",
    "Configuration files define hosts, ports, timeouts and retry policies.",
    "The library supports English, Chinese, French, German and Spanish.",
    "Open source contributors fixed bugs and improved the documentation.",
    "Normalization maps every vector onto the unit sphere before indexing.",
    "Quantization compresses vectors to reduce memory at a small cost in recall.",
    "Pilots checked the aircraft engines before flying across the Atlantic.",
    "The museum displays ancient paintings, sculptures and jewelry.",
    "Farmers harvest wheat, rice and corn when autumn arrives.",
    "Scientists published experimental results about climate change.",
    "The orchestra performed a symphony with violins, trumpets and drums.",
    "Legal contracts specify obligations, penalties and termination clauses.",
    # Chinese
    "数据是模型训练的基础。",
    "向量数据库用于高效的相似度检索。",
    "混合检索结合了稠密检索和稀疏检索。",
    "模型把文本编码成向量。",
    "我们使用召回率和准确率评估检索效果。",
    "猫坐在垫子上，狗在花园里跑。",
    "我的猫喜欢睡觉，我的狗喜欢玩。",
    "公司第四季度的收入和利润创下新高。",
    "今年的营业收入增长了百分之十二。",
    "大语言模型可以根据检索到的文档回答问题。",
    "索引存储了十亿个向量，分布在多个分片中。",
    "用户每天搜索商品、新闻、图片和音乐。",
    "今天天气晴朗，西边吹来微风。",
    "机器学习和信息检索是计算机科学的重要领域。",
    "重排序模型对候选文档重新打分。",
    "查询向量和文档向量的内积越大，相似度越高。",
    "训练数据的质量决定了模型的效果。",
    "中文分词和英文分词的方法不同。",
    "这个集合包含主键字段和向量字段。",
    "服务器返回错误，因为集合没有加载。",
    "北京和上海是中国最大的城市。",
    "苹果是红色的，香蕉是黄色的。",
    "我们在一台机器上测量了延迟和吞吐量。",
    "稀疏向量中的每个词都有一个权重。",
    "检索增强生成让答案有据可查。",
    "医生检查了病人的症状、药物和血压。",
    "足球队在下半场踢进了三个球。",
    "工程师测试之后把新版本部署到生产环境。",
    "厨房里有新鲜面包、咖啡和蔬菜的香味。",
    "学生们在星期五晚上之前交了作业。",
    "河流穿过高山、森林和村庄流向大海。",
    "监控面板显示内存、磁盘空间和网络流量。",
    "配置文件定义了主机、端口、超时和重试策略。",
    "开源贡献者修复了错误并改进了文档。",
    "量化压缩向量以减少内存占用。",
    "关键词搜索对于罕见名称和产品编号仍然有效。",
    "仓库在节日期间发出了两万个订单。",
    "春天花开，夏天炎热，秋天落叶，冬天下雪。",
    "他每天早上六点起床，跑步半小时，然后吃早饭。",
    "这家银行的存款利率和贷款利率都下降了。",
    "飞行员在起飞前检查了飞机的发动机。",
    "博物馆展出古代绘画、雕塑和珠宝。",
    "农民在秋天收割小麦、水稻和玉米。",
    "科学家发表了关于气候变化的实验结果。",
    "乐团用小提琴、小号和鼓演奏了交响曲。",
    "合同规定了双方的义务、违约责任和终止条款。",
    "孩子们在公园里放风筝、骑自行车、踢毽子。",
    "图书馆周末开放，借书需要带身份证。",
)


@dataclass(frozen=True)
class TinyModels:
    """Paths of the built model folders (all inside the build ``root``)."""

    dense: Path
    m3: Path
    splade: Path
    cross_encoder: Path
    tokenizer_dir: Path

    @classmethod
    def at(cls, root: Path) -> "TinyModels":
        root = Path(root)
        return cls(
            dense=root / "dense",
            m3=root / "m3",
            splade=root / "splade",
            cross_encoder=root / "cross-encoder",
            tokenizer_dir=root / "tokenizer",
        )

    def hybrid_collection(self, name: str) -> CollectionConfig:
        """A collection on the tiny dense and SPLADE models: every path runs."""
        from hybrid_search import CollectionConfig, DenseEncoderConfig, SparseEncoderConfig

        return CollectionConfig(
            name=name,
            dense=DenseEncoderConfig(model=str(self.dense), kind="sentence-transformers"),
            sparse=SparseEncoderConfig(model=str(self.splade), kind="splade"),
        )

    def as_dict(self) -> dict[str, Path]:
        return {
            "dense": self.dense,
            "m3": self.m3,
            "splade": self.splade,
            "cross_encoder": self.cross_encoder,
            "tokenizer_dir": self.tokenizer_dir,
        }


def build_tiny_models(root: Path) -> TinyModels:
    """Build (or reuse) every tiny model under ``root`` and return their paths.

    Idempotent: if ``root`` already holds a complete build of the current
    ``BUILD_VERSION`` nothing is rebuilt.  Safe to call concurrently from
    several processes sharing ``root``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = TinyModels.at(root)
    with _file_lock(root / _LOCK):
        if _is_complete(root, paths):
            return paths
        for p in paths.as_dict().values():
            if p.exists():
                shutil.rmtree(p)
        (root / _MARKER).unlink(missing_ok=True)
        _build_all(paths)
        (root / _MARKER).write_text(BUILD_VERSION, encoding="utf-8")
    return paths


# --------------------------------------------------------------------------
# internals
# --------------------------------------------------------------------------


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _is_complete(root: Path, paths: TinyModels) -> bool:
    marker = root / _MARKER
    if not marker.is_file() or marker.read_text(encoding="utf-8").strip() != BUILD_VERSION:
        return False
    return all(p.is_dir() for p in paths.as_dict().values())


def _build_all(paths: TinyModels) -> None:
    # Heavy imports are local so that importing this module (e.g. from
    # conftest) stays cheap for tests that never need the models.
    import torch

    vocab = _train_vocab()
    tokenizer = _make_tokenizer(vocab)
    tokenizer.save_pretrained(str(paths.tokenizer_dir))

    with tempfile.TemporaryDirectory(prefix="tiny-models-staging-") as staging, _quiet_transformers():
        staging_dir = Path(staging)
        # fork_rng: seeding must not leak into the caller's global RNG state.
        with torch.random.fork_rng(devices=[]):
            _build_dense(paths.dense, tokenizer, len(vocab), staging_dir / "dense")
            _build_m3(paths.m3, vocab, len(vocab))
            _build_splade(paths.splade, tokenizer, len(vocab), staging_dir / "splade")
            _build_cross_encoder(paths.cross_encoder, tokenizer, len(vocab))


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars / load reports during the build,
    restoring the previous settings afterwards."""
    from transformers.utils import logging as hf_logging

    bars_were_enabled = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_were_enabled:
            hf_logging.enable_progress_bar()


def _train_vocab() -> dict[str, int]:
    """Deterministically "train" a WordPiece vocabulary on :data:`CORPUS`.

    Text is normalised and split with the ``tokenizers`` library's own
    ``BertNormalizer`` (lowercase, ``handle_chinese_chars=True`` so every CJK
    character is its own word) and ``BertPreTokenizer``; the vocabulary is

    1. the special tokens (``[PAD]`` = 0 ... ``[MASK]`` = 4),
    2. every corpus word, most frequent first,
    3. every character seen plus ``a-z0-9``, ASCII and common CJK
       punctuation (so nothing in the corpus or plain ASCII text maps to
       ``[UNK]``),
    4. ``##`` continuations of those ASCII characters and of every corpus
       word suffix (2-5 chars) shared by at least two distinct words, so
       unseen inflections split realistically (``retrievers`` ->
       ``retriever ##s``).

    Why not ``BertWordPieceTokenizer.train_from_iterator``: its trainer breaks
    frequency ties in Rust hash-map order, which is randomly seeded per
    process, so the vocabulary (not only the ids, the token *set*) changes
    from run to run on a small corpus.  That would make the models
    non-reproducible, which these test fixtures must not be.
    """
    import string
    from collections import Counter, defaultdict

    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter(
        word
        for sentence in CORPUS
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(sentence))
    )

    suffix_hosts: defaultdict[str, set[str]] = defaultdict(set)
    for word in words:
        for k in range(2, 6):
            if len(word) > k:
                suffix_hosts[word[-k:]].add(word)

    ascii_chars = string.ascii_lowercase + string.digits
    punctuation = string.punctuation + "，。！？；：、（）《》「」“”‘’…—"
    chars = sorted({c for word in words for c in word} | set(ascii_chars) | set(punctuation))
    continuations = sorted(
        {"##" + c for c in ascii_chars}
        | {"##" + c for word in words for c in word[1:]}
        | {"##" + suffix for suffix, hosts in suffix_hosts.items() if len(hosts) >= 2}
    )

    ordered = list(SPECIAL_TOKENS)
    ordered += sorted(words, key=lambda w: (-words[w], w))
    ordered += chars
    ordered += continuations
    vocab: dict[str, int] = {}
    for token in ordered:
        vocab.setdefault(token, len(vocab))
    return vocab


def _make_tokenizer(vocab: dict[str, int], *, with_eos: bool = False):
    from transformers import BertTokenizerFast

    kwargs = {}
    if with_eos:
        # FlagEmbedding's M3 drops cls/eos/pad/unk from lexical weights; BERT
        # has no eos by default, so use [SEP] like XLM-R's </s> in real bge-m3.
        kwargs["eos_token"] = "[SEP]"
    return BertTokenizerFast(
        vocab=dict(vocab),
        do_lower_case=True,
        tokenize_chinese_chars=True,
        strip_accents=None,
        model_max_length=MAX_SEQ_LENGTH,
        **kwargs,
    )


def _bert_config(vocab_size: int, **overrides):
    from transformers import BertConfig

    cfg = dict(
        vocab_size=vocab_size,
        hidden_size=HIDDEN_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        intermediate_size=INTERMEDIATE_SIZE,
        max_position_embeddings=MAX_POSITIONS,
        type_vocab_size=2,
        pad_token_id=0,
    )
    cfg.update(overrides)
    return BertConfig(**cfg)


def _make_lexical(word_embeddings) -> None:
    import torch

    with torch.no_grad():
        word_embeddings.weight.mul_(WORD_EMBEDDING_SCALE)


def _seed(offset: int) -> None:
    import torch

    torch.manual_seed(SEED + offset)


def _build_dense(out: Path, tokenizer, vocab_size: int, staging: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertModel

    _seed(1)
    # Keep the (unused) pooler: Transformer loads via AutoModel, which would
    # otherwise report pooler.dense.* as MISSING and randomly init it.
    model = BertModel(_bert_config(vocab_size), add_pooling_layer=True)
    _make_lexical(model.embeddings.word_embeddings)
    model.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))

    transformer = Transformer(str(staging), max_seq_length=MAX_SEQ_LENGTH)
    pooling = Pooling(embedding_dimension=HIDDEN_SIZE, pooling_mode="mean")
    st = SentenceTransformer(
        modules=[transformer, pooling, Normalize()], device="cpu", similarity_fn_name="cosine"
    )
    st.save(str(out), create_model_card=False)  # model card rendering costs ~0.3 s


def _build_m3(out: Path, vocab: dict[str, int], vocab_size: int) -> None:
    """Folder for ``BGEM3FlagModel``: see FlagEmbedding's
    ``EncoderOnlyEmbedderM3Runner.get_model``: ``AutoModel`` + tokenizer, plus
    ``colbert_linear.pt`` (Linear(hidden, hidden)) and ``sparse_linear.pt``
    (Linear(hidden, 1)).  Both .pt files must exist or *both* heads are
    silently random-initialised at load time."""
    import torch
    from transformers import BertModel

    _seed(2)
    model = BertModel(_bert_config(vocab_size), add_pooling_layer=True)  # AutoModel expects the pooler
    _make_lexical(model.embeddings.word_embeddings)
    colbert_linear = torch.nn.Linear(HIDDEN_SIZE, HIDDEN_SIZE)
    sparse_linear = torch.nn.Linear(HIDDEN_SIZE, 1)
    with torch.no_grad():
        sparse_linear.bias.fill_(M3_SPARSE_BIAS)

    model.save_pretrained(str(out))
    _make_tokenizer(vocab, with_eos=True).save_pretrained(str(out))
    torch.save(colbert_linear.state_dict(), out / "colbert_linear.pt")
    torch.save(sparse_linear.state_dict(), out / "sparse_linear.pt")


def _build_splade(out: Path, tokenizer, vocab_size: int, staging: Path) -> None:
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer
    from transformers import BertForMaskedLM

    import torch

    _seed(3)
    model = BertForMaskedLM(_bert_config(vocab_size))  # decoder tied to word embeddings
    _make_lexical(model.bert.embeddings.word_embeddings)
    head = model.cls.predictions
    with torch.no_grad():
        # Identity transform: logit_t ~ <LN(gelu(h_i)), E_t>, which peaks at
        # t = input token i because h_i ~ LN(E_i) (see WORD_EMBEDDING_SCALE).
        head.transform.dense.weight.copy_(torch.eye(HIDDEN_SIZE))
        head.transform.dense.bias.zero_()
        head.bias.fill_(SPLADE_BIAS)
        head.bias[: len(SPECIAL_TOKENS)] = -100.0
    model.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))

    # ST >= 5.4: Transformer(transformer_task="fill-mask") is the
    # non-deprecated replacement of sparse_encoder.models.MLMTransformer.
    mlm = Transformer(str(staging), transformer_task="fill-mask", max_seq_length=MAX_SEQ_LENGTH)
    pooling = SpladePooling(pooling_strategy="max", embedding_dimension=vocab_size)
    se = SparseEncoder(modules=[mlm, pooling], device="cpu", similarity_fn_name="dot")
    se.save(str(out), create_model_card=False)


def _build_cross_encoder(out: Path, tokenizer, vocab_size: int) -> None:
    from transformers import BertForSequenceClassification

    _seed(4)
    model = BertForSequenceClassification(_bert_config(vocab_size, num_labels=1))
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def describe(root: Path) -> str:
    """Human-readable summary of a build (handy when debugging fixtures)."""
    paths = TinyModels.at(root)
    info = {k: sorted(x.name for x in v.iterdir()) if v.is_dir() else None for k, v in paths.as_dict().items()}
    return json.dumps(info, indent=2, default=str)


if __name__ == "__main__":  # pragma: no cover - manual smoke run
    import sys
    import time

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="tiny-models-"))
    t0 = time.perf_counter()
    build_tiny_models(target)
    print(f"built in {time.perf_counter() - t0:.2f}s at {target}")
    print(describe(target))
