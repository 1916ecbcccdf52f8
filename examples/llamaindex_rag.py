"""A LlamaIndex RAG query and a chat turn recorded as one session, then replayed as a timeline.

Runs offline: LlamaIndex's MockLLM and MockEmbedding stand in for the models, over a real
VectorStoreIndex. Each LLM call becomes a step; the embedding and retrieval before it are listed
in its tool calls (node ids and scores). Steps go to the default store, ``.agentsession/`` under
the working directory (move it with ``AGENTSESSION_BACKEND_URL``).

    pip install ./packages/agentsession ./packages/agentsession-llamaindex llama-index-core
    python examples/llamaindex_rag.py
"""

from __future__ import annotations

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM

import agentsession
from agentsession import SessionTracker, render_session
from agentsession_llamaindex import instrument

DOCUMENTS = [
    Document(text="Le Marais hotels: Hotel Jules & Jim, 180 EUR a night, quiet courtyard."),
    Document(text="Saint-Germain hotels: Hotel Bel Ami, 240 EUR a night, near the Seine."),
    Document(text="Montmartre hotels: Hotel Particulier, 310 EUR a night, garden views."),
    Document(text="Paris metro tickets cost 2.15 EUR; a day pass costs 12 EUR."),
]
QUESTION = "Which hotel in Paris is the cheapest?"
FOLLOW_UP = "And how do I get around the city?"


def build_index() -> VectorStoreIndex:
    """The travel guide, embedded once, before the session starts."""
    return VectorStoreIndex.from_documents(DOCUMENTS, embed_model=MockEmbedding(embed_dim=16))


def record(session_id: str | None = None) -> SessionTracker:
    """Query the guide, then chat about it: every LLM call is the session's next step."""
    instrument()  # our handlers on LlamaIndex's root dispatcher (a second call does nothing)
    index = build_index()
    llm = MockLLM(max_tokens=12)
    with SessionTracker(
        session_id, user_id="user-a", tags=["llamaindex-example"], environment="demo"
    ) as session:
        session.set_state("user_query", QUESTION)
        # Step 0: a query engine call; its embedding and retrieval are listed in its tool calls.
        answer = index.as_query_engine(llm=llm, similarity_top_k=2).query(QUESTION)
        session.update_state({"answer": str(answer), "sources": len(answer.source_nodes)})

        # Step 1: a chat turn over the same index, in the same session.
        chat_engine = index.as_chat_engine(chat_mode="condense_plus_context", llm=llm)
        reply = chat_engine.chat(FOLLOW_UP)
        session.update_state({"follow_up": FOLLOW_UP, "reply": str(reply)})
    return session


def run(session_id: str | None = None) -> str:
    """The whole scenario; returns the id of the session it recorded."""
    return record(session_id).session_id


def main() -> None:
    session = record()
    print(render_session(session))
    print(f"\nStored in {agentsession.get_settings().backend_url}")
    print(f"Replay it with: agentsession sessions show {session.session_id}")


if __name__ == "__main__":
    main()
