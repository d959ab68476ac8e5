"""Training data: a corpus of chunks, a document-level split, and examples.

Sources:

- ``beir``: a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``);
- ``jsonl``: the user's pairs or triplets in FlagEmbedding's format
  (``{"query": str, "pos": [str], "neg": [str]}``, ids optional);
- ``collection``: the chunks of an indexed collection, read through the engine;
  labelled by ``questions`` when given (a JSONL file of
  ``{"query": str, "chunk_ids" | "doc_ids": [str]}`` or a BEIR folder whose
  qrels name the collection's doc ids), else questions come from an LLM or
  from pseudo-queries.

The split is by document, never by query: every chunk of a document lands in
exactly one of train/dev/test, a labelled query follows its relevant documents
(and is dropped if they straddle parts), and pseudo-queries and LLM questions
are made from train documents only. So no test chunk is ever trained on, not
even as a negative. The split is saved beside the data as ``split.json``.

A data folder is plain files::

    manifest.json   config, counts, sha256 of every file
    split.json      doc ids per part, method and seed
    corpus.jsonl    chunks: doc_id, chunk_index, text, title, source, ...
    train.jsonl     examples: query, pos, neg (+ query_id, pos_ids, neg_ids, source)
    dev.jsonl       held-out queries for evaluation during training
    test.jsonl      held-out queries for the before/after report
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from hybrid_search.errors import ConfigError, InputError
from hybrid_search.types import Chunk, chunk_id_for

from .llm_questions import LLMConfig, QuestionGenerator
from .pseudo_queries import PseudoQueryConfig, make_pseudo_queries
from .runs import check_choice, plain, sha256_files, write_json

if TYPE_CHECKING:
    from hybrid_search.engine import Engine

__all__ = [
    "DataConfig",
    "DocumentSplit",
    "Example",
    "EvalQuery",
    "TrainingData",
    "build_training_data",
    "load_training_data",
    "load_beir",
    "read_examples",
    "write_examples",
    "split_documents",
    "chunk_to_dict",
    "chunk_from_dict",
]

Source = Literal["beir", "jsonl", "collection"]
SplitMethod = Literal["labels", "random"]
Part = Literal["train", "dev", "test"]
PARTS: tuple[Part, ...] = ("train", "dev", "test")
DATA_FILES = ("corpus.jsonl", "split.json", "train.jsonl", "dev.jsonl", "test.jsonl")


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how it is split.

    ``split="labels"`` takes the documents judged in the ``test_split`` qrels
    as the test part (a BEIR set's own test split); ``"random"`` draws
    ``test_fraction`` of the documents. ``dev_fraction`` of the remaining
    documents is held out for evaluation during training. ``use_labels=False``
    trains on no labels at all (pseudo-queries / LLM questions only) while the
    labelled test queries still serve the report.
    """

    source: Source
    path: str | None = None
    collection: str | None = None
    questions: str | None = None  # source 'collection': labelled questions (JSONL or BEIR folder)
    train_split: str | None = "train"
    test_split: str | None = "test"
    use_labels: bool = True
    pseudo: PseudoQueryConfig | None = None
    llm: LLMConfig | None = None
    split: SplitMethod = "labels"
    test_fraction: float = 0.2
    dev_fraction: float = 0.1
    max_pseudo_chunks: int | None = None
    max_train_examples: int | None = None  # a random sample, for quick dry runs
    title_in_text: bool = True
    seed: int = 42

    def __post_init__(self) -> None:
        check_choice("DataConfig", "source", self.source, get_args(Source))
        check_choice("DataConfig", "split", self.split, get_args(SplitMethod))
        if self.source in ("beir", "jsonl") and not self.path:
            raise ConfigError(f"DataConfig.path must name the {self.source} input")
        if self.source == "collection" and not self.collection:
            raise ConfigError("DataConfig.collection must name the collection to read chunks from")
        if self.questions is not None and self.source != "collection":
            raise ConfigError("DataConfig.questions labels a collection source; a BEIR or JSONL source carries its own labels")
        if self.split == "labels" and (self.source != "beir" or not self.test_split):
            raise ConfigError("DataConfig.split='labels' needs a BEIR source with a test_split; use split='random'")
        for name in ("test_fraction", "dev_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"DataConfig.{name} must lie in [0, 1); got {value!r}")
        if self.split == "random" and self.test_fraction + self.dev_fraction >= 1.0:
            raise ConfigError("DataConfig.test_fraction + dev_fraction must leave documents to train on")
        has_labels = self.source == "jsonl" or (self.source == "beir" and self.train_split) or self.questions is not None
        if not ((self.use_labels and has_labels) or self.pseudo is not None or self.llm is not None):
            raise ConfigError("DataConfig gives no training signal: use labels, pseudo-queries or an LLM")
        for name in ("max_pseudo_chunks", "max_train_examples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"DataConfig.{name} must be >= 1")


@dataclass(frozen=True)
class DocumentSplit:
    """Which documents are in which part. Parts never share a document."""

    train: tuple[str, ...]
    dev: tuple[str, ...]
    test: tuple[str, ...]
    method: str
    seed: int

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for part in PARTS:
            for doc_id in getattr(self, part):
                if doc_id in seen:
                    raise InputError(f"document {doc_id!r} is in both {seen[doc_id]} and {part}")
                seen[doc_id] = part

    def part_of(self) -> dict[str, Part]:
        return {doc_id: part for part in PARTS for doc_id in getattr(self, part)}

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "seed": self.seed, **{part: list(getattr(self, part)) for part in PARTS}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DocumentSplit:
        return cls(*(tuple(data[part]) for part in PARTS), method=data["method"], seed=int(data["seed"]))


@dataclass
class Example:
    """One training example in FlagEmbedding's shape plus the chunk ids, so the
    miner can tell a labelled positive from a negative."""

    query: str
    pos: list[str]
    neg: list[str] = field(default_factory=list)
    query_id: str = ""
    pos_ids: list[str] = field(default_factory=list)
    neg_ids: list[str] = field(default_factory=list)
    source: str = "labels"

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "pos": self.pos,
            "neg": self.neg,
            "query_id": self.query_id,
            "pos_ids": self.pos_ids,
            "neg_ids": self.neg_ids,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, line: int = 0) -> Example:
        query = data.get("query")
        pos = data.get("pos")
        if not isinstance(query, str) or not query.strip():
            raise InputError(f"line {line}: 'query' must be a non-empty string")
        if isinstance(pos, str):
            pos = [pos]
        if not isinstance(pos, list) or not pos or not all(isinstance(p, str) for p in pos):
            raise InputError(f"line {line}: 'pos' must be a non-empty list of strings")
        neg = data.get("neg") or []
        if isinstance(neg, str):
            neg = [neg]
        if not all(isinstance(n, str) for n in neg):
            raise InputError(f"line {line}: 'neg' must be a list of strings")
        return cls(
            query=query,
            pos=list(pos),
            neg=list(neg),
            query_id=str(data.get("query_id", "")),
            pos_ids=[str(x) for x in data.get("pos_ids", [])],
            neg_ids=[str(x) for x in data.get("neg_ids", [])],
            source=str(data.get("source", "labels")),
        )


@dataclass
class EvalQuery:
    """A held-out query and its relevant chunks (chunk id -> grade)."""

    query_id: str
    query: str
    relevant: dict[str, int]
    source: str = "labels"

    def to_dict(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "query": self.query, "relevant": self.relevant, "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalQuery:
        return cls(str(data["query_id"]), data["query"], {str(k): int(v) for k, v in data["relevant"].items()}, data.get("source", "labels"))


def chunk_to_dict(chunk: Chunk) -> dict[str, Any]:
    return {
        "doc_id": chunk.doc_id,
        "chunk_index": chunk.chunk_index,
        "text": chunk.text,
        "title": chunk.title,
        "source": chunk.source,
        "page": chunk.page,
        "heading_path": list(chunk.heading_path),
        "metadata": chunk.metadata,
    }


def chunk_from_dict(data: dict[str, Any]) -> Chunk:
    return Chunk(
        doc_id=data["doc_id"],
        chunk_index=int(data["chunk_index"]),
        text=data["text"],
        title=data.get("title", ""),
        source=data.get("source", ""),
        page=data.get("page"),
        heading_path=tuple(data.get("heading_path", ())),
        metadata=dict(data.get("metadata") or {}),
    )


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as error:
                    raise InputError(f"{path}:{number}: not JSON ({error})") from error


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_examples(path: Path) -> list[Example]:
    return [Example.from_dict(row, line=number) for number, row in _read_jsonl(path)]


def write_examples(path: Path, examples: Iterable[Example]) -> None:
    _write_jsonl(path, (e.to_dict() for e in examples))


# --- sources -------------------------------------------------------------------------


@dataclass
class _Loaded:
    chunks: list[Chunk]
    queries: dict[str, str]
    train_qrels: dict[str, dict[str, int]]  # query id -> chunk id -> grade
    test_qrels: dict[str, dict[str, int]]
    given_negatives: dict[str, list[str]] = field(default_factory=dict)  # query id -> chunk ids


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            parts = line.rstrip("\n").split("\t")
            if number == 0 and parts[0] == "query-id":
                continue
            if len(parts) < 3:
                continue
            query_id, doc_id, grade = parts[0], parts[1], int(parts[2])
            if grade > 0:
                qrels.setdefault(query_id, {})[chunk_id_for(doc_id, 0)] = grade
    return qrels


def load_beir(folder: Path, *, train_split: str | None, test_split: str | None, title_in_text: bool = True) -> _Loaded:
    """A BEIR folder: each corpus entry becomes one chunk ``<_id>#0``."""
    folder = Path(folder)
    if not (folder / "corpus.jsonl").is_file():
        raise InputError(f"{folder} is not a BEIR folder (no corpus.jsonl)")
    chunks = []
    for _, row in _read_jsonl(folder / "corpus.jsonl"):
        title = (row.get("title") or "").strip()
        body = (row.get("text") or "").strip()
        # BEIR systems index title + text; BM25 here reads ``text`` only.
        text = f"{title}\n{body}" if title and title_in_text else body
        if not text.strip():
            continue
        chunks.append(Chunk(doc_id=str(row["_id"]), chunk_index=0, text=text, title=title))
    queries = {str(row["_id"]): row["text"] for _, row in _read_jsonl(folder / "queries.jsonl")}

    def split_qrels(name: str | None) -> dict[str, dict[str, int]]:
        if not name:
            return {}
        path = folder / "qrels" / f"{name}.tsv"
        if not path.is_file():
            raise InputError(f"{folder} has no qrels/{name}.tsv")
        return _read_qrels(path)

    return _Loaded(chunks, queries, split_qrels(train_split), split_qrels(test_split))


def _text_id(text: str) -> str:
    return "t" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _load_pairs(path: Path) -> _Loaded:
    """User pairs/triplets: every distinct passage text becomes a document."""
    chunks: dict[str, Chunk] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    negatives: dict[str, list[str]] = {}

    def add(text: str) -> str:
        doc_id = _text_id(text)
        chunks.setdefault(doc_id, Chunk(doc_id=doc_id, chunk_index=0, text=text))
        return chunk_id_for(doc_id, 0)

    for number, row in _read_jsonl(path):
        example = Example.from_dict(row, line=number)
        query_id = example.query_id or f"q{number}"
        queries[query_id] = example.query
        qrels[query_id] = {add(text): 1 for text in example.pos}
        negatives[query_id] = [add(text) for text in example.neg]
    return _Loaded(list(chunks.values()), queries, qrels, {}, negatives)


def _load_collection(engine: Engine, name: str) -> _Loaded:
    from hybrid_search.rows import chunk_from_row
    from hybrid_search.store import OUTPUT_FIELDS

    collection = engine.resolve(name)
    engine.open_collection(collection)
    chunks = [chunk_from_row(row) for row in engine.store.iterate(collection, "", OUTPUT_FIELDS)]
    chunks.sort(key=lambda c: (c.doc_id, c.chunk_index))
    return _Loaded(chunks, {}, {}, {})


def _label_collection(loaded: _Loaded, questions: Path) -> None:
    """Labelled questions for a collection's chunks. A doc id stands for every
    chunk of that document (the user knows the document, not the chunking)."""
    chunks_of: dict[str, list[str]] = {}
    for chunk in loaded.chunks:
        chunks_of.setdefault(chunk.doc_id, []).append(chunk.id)
    known = {c.id for c in loaded.chunks}
    rows: list[tuple[str, str, dict[str, int], str]] = []  # query id, text, target -> grade, where
    if questions.is_dir():
        beir = questions
        if not (beir / "queries.jsonl").is_file() or not (beir / "qrels").is_dir():
            raise InputError(f"{beir} is not a BEIR questions folder (needs queries.jsonl and qrels/*.tsv)")
        texts = {str(row["_id"]): str(row["text"]) for _, row in _read_jsonl(beir / "queries.jsonl")}
        for qrels_file in sorted((beir / "qrels").glob("*.tsv")):
            for query_id, relevant in _read_qrels(qrels_file).items():
                if query_id not in texts:
                    raise InputError(f"{qrels_file} judges query {query_id!r}, which {beir / 'queries.jsonl'} does not have")
                rows.append((query_id, texts[query_id], {_doc_of(cid): g for cid, g in relevant.items()}, f"{qrels_file.name}"))
    elif questions.is_file():
        for number, row in _read_jsonl(questions):
            query = row.get("query")
            if not isinstance(query, str) or not query.strip():
                raise InputError(f"{questions}:{number}: 'query' must be a non-empty string")
            ids = row.get("chunk_ids", row.get("doc_ids"))
            if isinstance(ids, str):
                ids = [ids]
            if not isinstance(ids, list) or not ids or ("chunk_ids" in row) == ("doc_ids" in row):
                raise InputError(f"{questions}:{number}: give exactly one of 'chunk_ids' or 'doc_ids', a non-empty list")
            targets = {("#" if "chunk_ids" in row else "") + str(i): 1 for i in ids}
            rows.append((str(row.get("query_id") or f"q{number}"), query, targets, f"line {number}"))
    else:
        raise InputError(f"no questions at {questions} (a JSONL file or a BEIR folder)")
    missing: list[str] = []
    for query_id, text, targets, where in rows:
        relevant: dict[str, int] = {}
        for target, grade in targets.items():
            if target.startswith("#"):
                chunk_ids = [target[1:]] if target[1:] in known else []
            else:
                chunk_ids = chunks_of.get(target, [])
            if not chunk_ids:
                missing.append(f"{target.lstrip('#')} ({where})")
            relevant.update({cid: grade for cid in chunk_ids})
        if relevant:
            loaded.queries[query_id] = text
            loaded.train_qrels[query_id] = relevant
    if missing:
        raise InputError(
            f"{len(missing)} labelled id(s) are not in the collection, e.g. {', '.join(missing[:3])}: "
            "label chunk ids ('<doc_id>#<chunk_index>') or doc ids of this collection"
        )


# --- split ---------------------------------------------------------------------------


def split_documents(
    doc_ids: Sequence[str],
    *,
    seed: int,
    dev_fraction: float,
    test_fraction: float = 0.0,
    test_docs: Iterable[str] | None = None,
) -> DocumentSplit:
    """Split documents (never queries). With ``test_docs`` those form the test
    part; otherwise ``test_fraction`` of the documents is drawn at random."""
    ordered = sorted(set(doc_ids))
    rng = random.Random(seed)
    if test_docs is not None:
        test = sorted(set(test_docs) & set(ordered))
        rest = [d for d in ordered if d not in set(test)]
        method = "labels"
    else:
        shuffled = ordered[:]
        rng.shuffle(shuffled)
        n_test = round(len(shuffled) * test_fraction)
        test, rest = sorted(shuffled[:n_test]), shuffled[n_test:]
        method = "random"
    rest = sorted(rest)
    rng.shuffle(rest)
    n_dev = round(len(rest) * dev_fraction)
    return DocumentSplit(train=tuple(sorted(rest[n_dev:])), dev=tuple(sorted(rest[:n_dev])), test=tuple(test), method=method, seed=seed)


def _doc_of(chunk_id: str) -> str:
    return chunk_id.rsplit("#", 1)[0]


# --- the data folder ---------------------------------------------------------------


@dataclass
class TrainingData:
    folder: Path
    corpus: list[Chunk]
    split: DocumentSplit
    train: list[Example]
    dev: list[EvalQuery]
    test: list[EvalQuery]
    manifest: dict[str, Any]

    def chunks(self, *parts: Part) -> list[Chunk]:
        """The chunks whose documents are in ``parts`` (all parts when none given)."""
        wanted = set(parts or PARTS)
        part_of = self.split.part_of()
        return [c for c in self.corpus if part_of.get(c.doc_id) in wanted]

    def chunk_by_id(self) -> dict[str, Chunk]:
        return {c.id: c for c in self.corpus}

    @property
    def train_file(self) -> Path:
        """Mined examples when the negatives stage ran, else the plain ones."""
        mined = self.folder / "train_negatives.jsonl"
        return mined if mined.is_file() else self.folder / "train.jsonl"

    def training_examples(self) -> list[Example]:
        return read_examples(self.train_file)

    def files(self) -> list[Path]:
        return [self.folder / name for name in DATA_FILES]


def load_training_data(folder: Path) -> TrainingData:
    folder = Path(folder)
    if not (folder / "manifest.json").is_file():
        raise InputError(f"{folder} is not a training data folder (no manifest.json); run `hybrid-search train data` first")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    corpus = [chunk_from_dict(row) for _, row in _read_jsonl(folder / "corpus.jsonl")]
    split = DocumentSplit.from_dict(json.loads((folder / "split.json").read_text(encoding="utf-8")))
    train = read_examples(folder / "train.jsonl")
    dev = [EvalQuery.from_dict(row) for _, row in _read_jsonl(folder / "dev.jsonl")]
    test = [EvalQuery.from_dict(row) for _, row in _read_jsonl(folder / "test.jsonl")]
    return TrainingData(folder, corpus, split, train, dev, test, manifest)


def _assign(qrels: dict[str, dict[str, int]], part_of: dict[str, Part]) -> tuple[dict[Part, list[str]], int]:
    """Each labelled query goes to the part holding all its relevant documents."""
    assigned: dict[Part, list[str]] = {part: [] for part in PARTS}
    straddling = 0
    for query_id in sorted(qrels):
        parts = {part_of.get(_doc_of(chunk_id)) for chunk_id in qrels[query_id]}
        if len(parts) == 1 and None not in parts:
            assigned[parts.pop()].append(query_id)  # type: ignore[index]
        else:
            straddling += 1
    return assigned, straddling


def _generated_queries(
    chunks: Sequence[Chunk], config: DataConfig, folder: Path, *, progress: bool
) -> tuple[list[tuple[str, str, str, str]], dict[str, Any]]:
    """(query, positive text, chunk id, kind) from the LLM and/or pseudo-queries."""
    found: list[tuple[str, str, str, str]] = []
    stats: dict[str, Any] = {}
    if config.llm is not None:
        with QuestionGenerator(config.llm, folder / "llm_cache") as generator:
            generated = generator.generate(chunks, progress=progress)
        if generated.failures:
            raise InputError(
                f"the LLM failed for {len(generated.failures)} of {len(chunks)} chunks (answers so far are cached; "
                f"re-run to continue). First failure: {next(iter(generated.failures.values()))}"
            )
        by_id = {c.id: c for c in chunks}
        for chunk_id, questions in sorted(generated.questions.items()):
            found.extend((q, by_id[chunk_id].text, chunk_id, "llm") for q in questions)
        stats["llm"] = {"requests": generated.requests, "retries": generated.retries, "cache_hits": generated.cache_hits}
    if config.pseudo is not None:
        found.extend((p.query, p.positive, p.chunk_id, p.kind) for p in make_pseudo_queries(chunks, config.pseudo))
    return found, stats


def build_training_data(config: DataConfig, folder: Path, *, engine: Engine | None = None, progress: bool = True) -> TrainingData:
    """Load, split and write a data folder; returns it loaded."""
    folder = Path(folder)
    if config.source == "beir":
        loaded = load_beir(Path(config.path or ""), train_split=config.train_split, test_split=config.test_split, title_in_text=config.title_in_text)
    elif config.source == "jsonl":
        loaded = _load_pairs(Path(config.path or ""))
    else:
        if engine is None:
            raise ConfigError("DataConfig.source='collection' needs an engine to read the collection from")
        loaded = _load_collection(engine, config.collection or "")
        if config.questions is not None:
            _label_collection(loaded, Path(config.questions))
    if not loaded.chunks:
        raise InputError("the source holds no chunks")
    by_id = {c.id: c for c in loaded.chunks}
    doc_ids = sorted({c.doc_id for c in loaded.chunks})

    test_docs = None
    if config.split == "labels":
        test_docs = {_doc_of(chunk_id) for relevant in loaded.test_qrels.values() for chunk_id in relevant}
    split = split_documents(doc_ids, seed=config.seed, dev_fraction=config.dev_fraction, test_fraction=config.test_fraction, test_docs=test_docs)
    part_of = split.part_of()
    stats: dict[str, Any] = {"documents": {part: len(getattr(split, part)) for part in PARTS}}

    # Labelled queries follow their documents; with split='labels' the test
    # queries are the given test split, and train queries touching a test
    # document are dropped (they would train on a test chunk).
    train_assigned, straddling = _assign(loaded.train_qrels, part_of)
    stats["labelled_queries_dropped"] = straddling + len(train_assigned["test"])
    # Without labels for training, dev is judged on generated queries too: a
    # label-free run must not pick or monitor models with labels. The test
    # queries (the report) are labelled whenever the source has labels.
    eval_ids: dict[Part, list[str]] = {
        "dev": train_assigned["dev"] if config.use_labels else [],
        "test": sorted(loaded.test_qrels) if config.split == "labels" else train_assigned["test"],
    }

    train: list[Example] = []
    if config.use_labels:
        for query_id in train_assigned["train"]:
            relevant = [cid for cid, _ in sorted(loaded.train_qrels[query_id].items(), key=lambda item: -item[1])]
            negatives = [cid for cid in loaded.given_negatives.get(query_id, []) if part_of.get(_doc_of(cid)) == "train"]
            train.append(
                Example(
                    query=loaded.queries[query_id],
                    pos=[by_id[cid].text for cid in relevant],
                    neg=[by_id[cid].text for cid in negatives],
                    query_id=query_id,
                    pos_ids=relevant,
                    neg_ids=negatives,
                    source="labels",
                )
            )
    stats["labelled_train_examples"] = len(train)

    # Generated queries: training ones from train documents only; held-out
    # ones only where the part has no labelled queries to evaluate with.
    rng = random.Random(config.seed)
    generated_stats: dict[str, Any] = {}
    if config.pseudo is not None or config.llm is not None:
        train_chunks = [c for c in loaded.chunks if part_of[c.doc_id] == "train"]
        if config.max_pseudo_chunks is not None and len(train_chunks) > config.max_pseudo_chunks:
            train_chunks = sorted(rng.sample(train_chunks, config.max_pseudo_chunks), key=lambda c: c.id)
        generated, generated_stats = _generated_queries(train_chunks, config, folder, progress=progress)
        for number, (query, positive, chunk_id, kind) in enumerate(generated):
            train.append(Example(query=query, pos=[positive], query_id=f"{kind}-{number}", pos_ids=[chunk_id], source=kind))
        stats["generated_train_examples"] = len(generated)
    eval_queries: dict[Part, list[EvalQuery]] = {}
    held_out: tuple[Part, ...] = ("dev", "test")
    for part in held_out:
        qrels = loaded.test_qrels if part == "test" and config.split == "labels" else loaded.train_qrels
        labelled = [EvalQuery(query_id, loaded.queries[query_id], qrels[query_id]) for query_id in eval_ids[part]]
        if not labelled and (config.pseudo is not None or config.llm is not None):
            part_chunks = [c for c in loaded.chunks if part_of[c.doc_id] == part]
            generated, _ = _generated_queries(part_chunks, config, folder, progress=progress)
            labelled = [EvalQuery(f"{kind}-{part}-{n}", q, {cid: 1}, kind) for n, (q, _, cid, kind) in enumerate(generated)]
        eval_queries[part] = labelled
    stats.update({f"{part}_queries": len(eval_queries[part]) for part in held_out})
    if not train:
        raise InputError("no training examples: the train part has no labelled queries and no pseudo-queries were made")
    if config.max_train_examples is not None and len(train) > config.max_train_examples:
        train = rng.sample(train, config.max_train_examples)
    stats["train_examples"] = len(train)

    folder.mkdir(parents=True, exist_ok=True)
    _write_jsonl(folder / "corpus.jsonl", (chunk_to_dict(c) for c in loaded.chunks))
    write_json(folder / "split.json", split.to_dict())
    write_examples(folder / "train.jsonl", train)
    _write_jsonl(folder / "dev.jsonl", (q.to_dict() for q in eval_queries["dev"]))
    _write_jsonl(folder / "test.jsonl", (q.to_dict() for q in eval_queries["test"]))
    (folder / "train_negatives.jsonl").unlink(missing_ok=True)  # mined from older data
    manifest = {
        "format": "hybrid-search-training-data/1",
        "config": plain(config),
        "stats": {**stats, **generated_stats},
        "sha256": sha256_files(folder / name for name in DATA_FILES),
    }
    write_json(folder / "manifest.json", manifest)
    return load_training_data(folder)
