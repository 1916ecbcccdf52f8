"""Scripted LlamaIndex models for the tests: a function-calling chat LLM that answers from a
list of replies (text, tool calls, token usage), offline and deterministic."""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection


@dataclass
class Reply:
    """One answer of the scripted model."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    usage: tuple[int, int] | None = (11, 7)
    error: Exception | None = None


class ScriptedLLM(FunctionCallingLLM):
    """A function-calling chat model whose replies are scripted; the last reply repeats."""

    model: str = "scripted-model"
    _replies: list[Reply] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    calls: int = 0

    def __init__(self, replies: Sequence[Reply | str] = ("done",), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._replies = [Reply(r) if isinstance(r, str) else r for r in replies]

    @classmethod
    def class_name(cls) -> str:
        return "ScriptedLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            is_chat_model=True, is_function_calling_model=True, model_name=self.model
        )

    def _next(self) -> Reply:
        with self._lock:
            self.calls += 1
            return self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]

    def _response(self, reply: Reply, delta: str | None = None) -> ChatResponse:
        if reply.error is not None:
            raise reply.error
        extra: dict[str, Any] = {}
        if reply.tool_calls:
            extra["tool_calls"] = [
                ToolSelection(tool_id=f"call-{i}", tool_name=name, tool_kwargs=kwargs)
                for i, (name, kwargs) in enumerate(reply.tool_calls)
            ]
        raw = None
        if reply.usage is not None:
            prompt, completion = reply.usage
            raw = {
                "model": f"{self.model}-2025",
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        message = ChatMessage(role="assistant", content=reply.text, additional_kwargs=extra)
        return ChatResponse(message=message, raw=raw, delta=delta)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._response(self._next())

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._response(self._next())

    @llm_chat_callback()
    def stream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> Generator[ChatResponse, None, None]:
        reply = self._next()

        def chunks() -> Generator[ChatResponse, None, None]:
            words = reply.text.split(" ")
            for i in range(len(words)):
                partial = Reply(" ".join(words[: i + 1]), reply.tool_calls, None, reply.error)
                last = i == len(words) - 1
                yield self._response(reply if last else partial, delta=words[i])

        return chunks()

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> AsyncGenerator[ChatResponse, None]:
        reply = self._next()

        async def chunks() -> AsyncGenerator[ChatResponse, None]:
            words = reply.text.split(" ")
            for i in range(len(words)):
                partial = Reply(" ".join(words[: i + 1]), reply.tool_calls, None, reply.error)
                last = i == len(words) - 1
                yield self._response(reply if last else partial, delta=words[i])

        return chunks()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._next().text)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return CompletionResponse(text=self._next().text)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> Generator[CompletionResponse, None, None]:
        text = self._next().text

        def chunks() -> Generator[CompletionResponse, None, None]:
            yield CompletionResponse(text=text, delta=text)

        return chunks()

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> AsyncGenerator[CompletionResponse, None]:
        text = self._next().text

        async def chunks() -> AsyncGenerator[CompletionResponse, None]:
            yield CompletionResponse(text=text, delta=text)

        return chunks()

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(
                user_msg if isinstance(user_msg, ChatMessage) else ChatMessage(content=user_msg)
            )
        return {"messages": messages}

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        calls: list[ToolSelection] = response.message.additional_kwargs.get("tool_calls", [])
        if not calls and error_on_no_tool_call:
            raise ValueError("the model called no tool")
        return calls
