"""Training: fine-tune the dense embedder, the learned-sparse head and the
reranker on the user's own documents, evaluate before/after through the
engine, and promote a better model behind an alias.

Stages (one module each, each writes a folder of plain files with a manifest):

    data.py            corpus, document-level split (split.json), examples
    pseudo_queries.py  offline pseudo-queries (inverse cloze, keywords, titles)
    llm_questions.py   LLM questions via an OpenAI-compatible endpoint (cached)
    negatives.py       hard negatives mined with Engine.search, false-negative control
    embedder.py        dense: sentence-transformers MNRL / cached MNRL / Matryoshka
    sparse.py          BGE-M3-style unified fine-tuning via FlagEmbedding, collapse check
    reranker.py        cross-encoder fine-tuning on mined hard negatives
    evaluate.py        before/after per path, hybrid, hybrid + rerank (ranx)
    promote.py         re-embed into <alias>_v<N>, switch the alias atomically
    runs.py            run manifests (config, data sha256, seed, git revision), resume
    pipeline.py        every stage from one config file
    cli.py             `hybrid-search train ...` (Typer app ``train_app``)

Heavy libraries (torch, sentence-transformers, FlagEmbedding) are imported
inside the functions that need them, so importing this package is cheap.
"""
