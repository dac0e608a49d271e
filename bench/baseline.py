"""The naive peer: the plain LangChain recipe (one vector per paragraph, FAISS vector store, top-k similarity)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings


class E5Embeddings(Embeddings):
    """LangChain embeddings over the same sentence-transformers model, with its query/passage prompts."""

    def __init__(self, model) -> None:
        self.model = model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.model.encode_document(texts, batch_size=32).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.model.encode_query([text])[0].tolist()


class NaiveRetriever:
    """`FAISS.from_texts(paragraphs)` then `similarity_search(question, k)`, exactly as a tutorial would."""

    def __init__(self, model, contexts: dict[str, str]) -> None:
        from langchain_community.vectorstores import FAISS

        ids = list(contexts)
        self.store = FAISS.from_texts(
            [contexts[i] for i in ids], E5Embeddings(model), metadatas=[{"context_id": i} for i in ids]
        )

    def ranked(self, question: str, k: int = 10) -> list[str]:
        return [d.metadata["context_id"] for d in self.store.similarity_search(question, k=k)]


class NaiveChunkRetriever:
    """The tutorial recipe over whole articles: `RecursiveCharacterTextSplitter` chunks in a LangChain FAISS store.

    Chunk vectors are cached in the work folder (.npy plus the chunk texts as JSON) so a second run does not embed
    the corpus again; the store is still LangChain's `FAISS.from_embeddings`, searched with `similarity_search`.
    """

    def __init__(self, model, articles: list[dict], cache: Path, chunk_size: int = 400, overlap: int = 50) -> None:
        from langchain_community.vectorstores import FAISS
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=overlap)
        texts, metas = [], []
        for a in articles:
            for chunk in splitter.split_text(a["text"]):
                texts.append(chunk)
                metas.append({"doc_id": a["id"]})
        embeddings = E5Embeddings(model)
        digest = hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()[:16]
        vec_file = cache / f"naive-{digest}.npy"
        if vec_file.is_file():
            vectors = np.load(vec_file, allow_pickle=False)
        else:
            vectors = np.asarray(embeddings.embed_documents(texts), dtype=np.float32)
            cache.mkdir(parents=True, exist_ok=True)
            np.save(vec_file, vectors, allow_pickle=False)
        self.store = FAISS.from_embeddings(list(zip(texts, vectors.tolist(), strict=True)), embeddings, metadatas=metas)

    def top(self, question: str, k: int = 3) -> list[tuple[str, str]]:
        """(article id, chunk text) of the k nearest chunks."""
        return [(d.metadata["doc_id"], d.page_content) for d in self.store.similarity_search(question, k=k)]
