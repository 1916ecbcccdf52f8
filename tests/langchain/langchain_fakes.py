"""LangChain's own fake chat models, with the few extras the adapter's tests need: a model
name, token usage, tool calls an agent loop can bind, and a stream that reports usage."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

MODEL = "gpt-4o-mini"


def reply(
    text: str = "",
    *,
    input_tokens: int = 12,
    output_tokens: int = 5,
    tool_calls: Sequence[dict[str, Any]] = (),
    model: str = "gpt-4o-mini-2024-07-18",
) -> AIMessage:
    """An AIMessage as a provider returns it: usage, the model that answered, tool calls."""
    return AIMessage(
        content=text,
        tool_calls=[
            {"name": call["name"], "args": call["args"], "id": call.get("id", f"call_{n}")}
            for n, call in enumerate(tool_calls)
        ],
        usage_metadata={
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
        response_metadata={"model_name": model},
    )


class ScriptedChatModel(GenericFakeChatModel):
    """GenericFakeChatModel with a model name, that agents can bind tools to.

    Binding tools returns the model itself: the script already holds the tool calls.
    """

    model: str = MODEL

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self


class UsageStreamingChatModel(GenericFakeChatModel):
    """Streams the scripted reply word by word, then a last chunk with the token usage."""

    model: str = MODEL

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = next(self.messages)
        assert isinstance(message, AIMessage)
        for word in str(message.content).split(" "):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=message.usage_metadata)
        )


def scripted(*replies: AIMessage | str) -> ScriptedChatModel:
    return ScriptedChatModel(messages=iter(replies))


def react_agent(
    model: Any, tools: Sequence[Any], checkpointer: Any = None, *, tool_errors: bool = False
) -> Any:
    """A LangGraph tool-calling agent: the model node, then the tools node while it asks.

    ``tool_errors``: a tool's exception becomes a ``ToolMessage(status="error")``.
    """
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    def call_model(state: Any) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", call_model)
    graph.add_node("tools", ToolNode(list(tools), handle_tool_errors=tool_errors))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=checkpointer)
