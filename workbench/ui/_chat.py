"""A model call's request and response as a chat: messages with a role and typed parts.

Owns reading the request bodies of the APIs the providers modules know (OpenAI chat
completions and Responses, Anthropic messages, Gemini ``contents``, Ollama and Cohere chats,
which follow OpenAI's shape) into one form the page draws::

    {"role": "system" | "user" | "assistant" | "tool" | ..., "parts": [part, ...]}
    part = {"type": "text", "text": str}
         | {"type": "image", "source": str}          # a placeholder, never the image bytes
         | {"type": "tool_call", "name": str, "id": str | None, "arguments": str}
         | {"type": "tool_result", "id": str | None, "text": str}
         | {"type": "other", "json": str}            # a part of a kind not known here

A body none of them fits has no messages (``[]``) and the page shows its JSON as it is. Images
are named, not shown: a data URL would put megabytes into the page, and a remote URL would make
the page fetch from off this machine.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["chat_messages", "response_messages"]

Part = dict[str, Any]
Message = dict[str, Any]


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(value)


def _image(source: Any) -> Part:
    if isinstance(source, dict):
        source = source.get("url") or source.get("media_type") or source.get("type") or "image"
    text = str(source)
    if text.startswith("data:"):
        text = text.split(",", 1)[0] + ",… (inline image)"
    return {"type": "image", "source": text[:200]}


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else _json(value)


def _parts(content: Any) -> list[Part]:
    """The parts of one message's content, whichever API's block types it uses."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return [{"type": "other", "json": _json(content)}]
    parts: list[Part] = []
    for block in content:
        if isinstance(block, str):
            parts.append({"type": "text", "text": block})
            continue
        if not isinstance(block, dict):
            parts.append({"type": "other", "json": _json(block)})
            continue
        kind = block.get("type")
        if kind in ("text", "input_text", "output_text") or (kind is None and "text" in block):
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind in ("image_url", "input_image", "image") or "inline_data" in block:
            parts.append(
                _image(
                    block.get("image_url")
                    or block.get("source")
                    or block.get("inline_data", {}).get("mime_type")
                    or "image"
                )
            )
        elif kind == "tool_use":
            parts.append(
                {
                    "type": "tool_call",
                    "name": block.get("name", ""),
                    "id": block.get("id"),
                    "arguments": _arguments(block.get("input", {})),
                }
            )
        elif kind == "tool_result":
            inner = block.get("content")
            text = inner if isinstance(inner, str) else _json(inner)
            parts.append({"type": "tool_result", "id": block.get("tool_use_id"), "text": text})
        elif "functionCall" in block:
            call = block["functionCall"]
            parts.append(
                {
                    "type": "tool_call",
                    "name": call.get("name", ""),
                    "id": None,
                    "arguments": _arguments(call.get("args", {})),
                }
            )
        elif "functionResponse" in block:
            answer = block["functionResponse"]
            parts.append({"type": "tool_result", "id": answer.get("name"), "text": _json(answer)})
        else:
            parts.append({"type": "other", "json": _json(block)})
    return parts


def _openai_message(message: dict[str, Any]) -> Message:
    parts = _parts(message.get("content"))
    for call in message.get("tool_calls") or ():
        function = call.get("function", {}) if isinstance(call, dict) else {}
        parts.append(
            {
                "type": "tool_call",
                "name": function.get("name", ""),
                "id": call.get("id") if isinstance(call, dict) else None,
                "arguments": _arguments(function.get("arguments", "")),
            }
        )
    if message.get("role") == "tool":
        text = "".join(p.get("text", "") for p in parts if p["type"] == "text")
        parts = [{"type": "tool_result", "id": message.get("tool_call_id"), "text": text}]
    if message.get("images"):  # Ollama: base64 images beside the text
        parts.extend(_image("image") for _ in message["images"])
    return {"role": str(message.get("role", "user")), "parts": parts}


def _responses_items(items: Any) -> list[Message]:
    if isinstance(items, str):
        return [{"role": "user", "parts": [{"type": "text", "text": items}]}]
    messages: list[Message] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "function_call":
            part = {
                "type": "tool_call",
                "name": item.get("name", ""),
                "id": item.get("call_id"),
                "arguments": _arguments(item.get("arguments", "")),
            }
            messages.append({"role": "assistant", "parts": [part]})
        elif kind == "function_call_output":
            part = {
                "type": "tool_result",
                "id": item.get("call_id"),
                "text": str(item.get("output")),
            }
            messages.append({"role": "tool", "parts": [part]})
        else:
            messages.append(
                {"role": str(item.get("role", "user")), "parts": _parts(item.get("content"))}
            )
    return messages


def chat_messages(request: Any) -> list[Message]:
    """The messages a recorded request (the canonical request the store holds) sent."""
    body = request.get("body") if isinstance(request, dict) else None
    if not isinstance(body, dict):
        return []
    messages: list[Message] = []
    system = body.get("system")  # Anthropic: a string or text blocks beside the messages
    if system:
        messages.append({"role": "system", "parts": _parts(system)})
    instruction = body.get("systemInstruction") or body.get("system_instruction")  # Gemini
    if isinstance(instruction, dict):
        messages.append({"role": "system", "parts": _parts(instruction.get("parts"))})
    if isinstance(body.get("instructions"), str):  # Responses API
        messages.append({"role": "system", "parts": _parts(body["instructions"])})
    if isinstance(body.get("messages"), list):
        messages.extend(_openai_message(m) for m in body["messages"] if isinstance(m, dict))
    elif "input" in body and not isinstance(body.get("input"), int | float):
        messages.extend(_responses_items(body["input"]))
    elif isinstance(body.get("contents"), list):  # Gemini
        for content in body["contents"]:
            if isinstance(content, dict):
                role = "assistant" if content.get("role") == "model" else content.get("role")
                messages.append({"role": role or "user", "parts": _parts(content.get("parts"))})
    elif isinstance(body.get("prompt"), str):  # completions, Ollama /api/generate
        messages.append({"role": "user", "parts": _parts(body["prompt"])})
    return messages


def response_messages(response: Any, text: str | None) -> list[Message]:
    """What the model answered: its message with any tool calls, else the response's text."""
    body = response.get("body") if isinstance(response, dict) and "body" in response else response
    messages: list[Message] = []
    if isinstance(body, dict):
        for choice in body.get("choices") or ():  # OpenAI chat completions
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict):
                messages.append(_openai_message({"role": "assistant", **message}))
        if body.get("type") == "message" and isinstance(body.get("content"), list):  # Anthropic
            messages.append({"role": "assistant", "parts": _parts(body["content"])})
        if isinstance(body.get("output"), list):  # Responses API
            messages.extend(_responses_items(body["output"]))
        for candidate in body.get("candidates") or ():  # Gemini
            content = candidate.get("content") if isinstance(candidate, dict) else None
            if isinstance(content, dict):
                messages.append({"role": "assistant", "parts": _parts(content.get("parts"))})
    if not messages and text:
        messages.append({"role": "assistant", "parts": [{"type": "text", "text": text}]})
    return messages
