"""A three-turn support chatbot on LangChain, recorded as one session, then printed as a timeline.

Runs offline: the chat model is LangChain's own ``GenericFakeChatModel`` answering from a
script, with the token counts a provider would report. Every model call is a step of the one
session (turn 2 looks an order up with a tool first: that call is listed in the step after it).
Steps go to the default store, ``.agentsession/sessions.db`` under the working directory (move
it with ``AGENTSESSION_BACKEND_URL``).

    python -m pip install ./packages/agentsession ./packages/agentsession-langchain langchain-core
    python examples/langchain_chat.py
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.tools import tool

import agentsession
from agentsession import SessionTracker, render_session
from agentsession_langchain import SessionCallbackHandler

TURNS = (
    "Hi! I ordered a desk lamp last week.",
    "Where is it? The order is A-17.",
    "Great, thanks. That's all.",
)


def answer(text: str, input_tokens: int, output_tokens: int, **fields: Any) -> AIMessage:
    """A scripted model answer, with the usage and model name a provider would report."""
    return AIMessage(
        content=text,
        usage_metadata={
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
        response_metadata={"model_name": "gpt-4o-mini"},
        **fields,
    )


LOOK_UP = {"name": "order_status", "args": {"order_id": "A-17"}, "id": "call-1"}
SCRIPT = [
    answer("Hello! Happy to help with your desk lamp order.", 38, 11),
    answer("", 61, 18, tool_calls=[LOOK_UP]),
    answer("Order A-17 left our warehouse yesterday and arrives Friday.", 97, 14),
    answer("You're welcome. Enjoy the lamp!", 118, 8),
]


@tool
def order_status(order_id: str) -> str:
    """Where an order is."""
    return f"Order {order_id}: shipped yesterday, delivery expected Friday."


def chat(session_id: str | None = None) -> SessionTracker:
    """Three turns of one conversation; each model call is a step of one session."""
    model = GenericFakeChatModel(messages=iter(SCRIPT))
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are the support bot of a lamp shop."), MessagesPlaceholder("history")]
    )
    bot = prompt | model
    with SessionTracker(session_id, user_id="user-a", tags=["langchain-example"]) as session:
        config: Any = {"callbacks": [SessionCallbackHandler(session)]}
        history: list[BaseMessage] = []
        for turn, question in enumerate(TURNS, start=1):
            session.set_state("turn", turn)
            history.append(HumanMessage(question))
            reply = bot.invoke({"history": history}, config)
            while isinstance(reply, AIMessage) and reply.tool_calls:
                # The model asked for a tool: run it, then ask again with its result.
                history.append(reply)
                history.extend(order_status.invoke(call, config) for call in reply.tool_calls)
                reply = bot.invoke({"history": history}, config)
            history.append(reply)
            session.set_state("last_answer", str(reply.content))
    return session


def run(session_id: str | None = None) -> str:
    """Record the whole conversation into the default backend; return the session id."""
    return chat(session_id).session_id


def main() -> None:
    session = chat()
    print(render_session(session))
    print(f"\nStored in {agentsession.get_settings().backend_url}")
    print(f"Replay it with: agentsession sessions show {session.session_id}")


if __name__ == "__main__":
    main()
