"""Which agent, in which team, is making a model call.

Two sources, read when the call starts and never changed:

- AutoGen's own context. Inside a team every agent runs as a message handler of the team's
  runtime, and ``autogen_core.MessageHandlerContext.agent_id()`` names it: AgentChat registers
  each participant as ``AgentId(type=f"{name}_{team_id}", key=team_id)``, and the group chat
  manager the same way. That gives the team (AutoGen's id for it) and the participant.
- The calling frames. An agent run on its own (``agent.run()``) has no runtime and so no such
  context; and an agent run inside another agent's tool inherits the outer agent's context. The
  innermost agent method on the Python stack (``on_messages_stream`` and friends, whose ``self``
  is the agent) names the agent that is actually calling, and ``SelectorGroupChatManager``'s
  ``select_speaker`` frame marks a speaker selection. Only frames whose function name is one of
  a handful are looked into, at most 64 frames, so the walk costs a few microseconds; a frame
  layout AutoGen changes one day costs the agent's name, never the call.

The walk stays because AutoGen offers nothing better outside a runtime: a model client is not
told who calls it, the messages' ``source`` names who wrote each past message (the first call
of a run has only the user's), and the agent name on autogen-core's own tracing spans can only
be read back when an OpenTelemetry SDK is recording them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import FrameType
from typing import Any

from autogen_core import MessageHandlerContext

try:
    from autogen_agentchat.base import ChatAgent
except ImportError:  # the Core API alone: there are agents, but no AgentChat agents
    ChatAgent = None  # type: ignore[assignment,misc]

__all__ = ["Caller", "find_caller"]

_AGENT_FRAMES = frozenset(
    {
        "on_messages_stream",
        "on_messages",
        "_call_llm",
        "_reflect_on_tool_use_flow",
        "run",
        "run_stream",
    }
)
_SELECTOR_FRAMES = frozenset({"select_speaker", "_select_speaker"})
_MAX_FRAMES = 64


@dataclass(frozen=True)
class Caller:
    """Who made a model call, as far as AutoGen lets us see."""

    agent: str | None = None
    """The agent's name (a participant's name in its team)."""
    team_id: str | None = None
    """AutoGen's id of the team the agent belongs to, when it runs in one."""
    agent_id: str | None = None
    """The runtime's ``AgentId`` of the message handler the call runs in, when there is one."""
    selects_speaker: bool = False
    """True for a group chat manager choosing the next speaker (SelectorGroupChat)."""


def _handler_agent() -> tuple[str | None, str | None, str | None]:
    """(name in its team or agent type, team id, AgentId) of the message handler running now."""
    try:
        agent_id = MessageHandlerContext.agent_id()
    except RuntimeError:  # not inside a runtime's message handler
        return None, None, None
    agent_type, key = str(agent_id.type), str(agent_id.key)
    suffix = f"_{key}"
    if agent_type.endswith(suffix) and len(agent_type) > len(suffix):
        return agent_type[: -len(suffix)], key, str(agent_id)
    return agent_type, None, str(agent_id)


_agent_types: dict[type, bool] = {}
"""Whether a class is an AgentChat agent, by class: isinstance(x, ChatAgent) goes through the
runtime-checkable Protocol among ChatAgent's bases, which is slow."""


def _is_agent(owner: Any) -> bool:
    cls = type(owner)
    known = _agent_types.get(cls)
    if known is None:
        known = _agent_types[cls] = ChatAgent is not None and isinstance(owner, ChatAgent)
    return known


def _agent_in(frame: FrameType) -> str | None:
    local = frame.f_locals
    owner = local.get("self")
    if owner is not None and _is_agent(owner):
        name: Any = owner.name
        return name if isinstance(name, str) else None
    agent_name = local.get("agent_name")  # AssistantAgent's classmethods take it as an argument
    return agent_name if isinstance(agent_name, str) else None


def find_caller() -> Caller:
    """Describe who is making the model call whose recording calls this."""
    handler_name, team_id, agent_id = _handler_agent()
    agent: str | None = None
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            break
        code_name = frame.f_code.co_name
        if code_name in _AGENT_FRAMES:
            agent = _agent_in(frame)
            if agent is not None:
                break
        elif code_name in _SELECTOR_FRAMES and hasattr(
            frame.f_locals.get("self"), "_participant_names"
        ):
            return Caller(handler_name, team_id, agent_id, selects_speaker=True)
        frame = frame.f_back
    if agent is None:
        return Caller(handler_name, team_id, agent_id)
    if agent != handler_name:
        # An agent run inside another's tool: not a member of the handler's team.
        team_id = agent_id = None
    return Caller(agent, team_id, agent_id)
