"""The naive peer: the plain LangChain recipe (one vector per paragraph, FAISS vector store, top-k similarity)."""

from __future__ import annotations

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
