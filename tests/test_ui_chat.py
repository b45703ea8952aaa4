"""A recorded request and response read as a chat (``workbench.ui._chat``), for each API shape."""

from __future__ import annotations

from workbench.ui._chat import chat_messages, response_messages


def _request(body: object) -> dict[str, object]:
    return {"method": "POST", "url": "http://127.0.0.1/v1/x", "body": body}


def test_openai_chat_with_tool_calls_images_and_tool_results() -> None:
    """OpenAI chat: roles kept, an image a placeholder, tool calls and their results typed."""
    messages = chat_messages(
        _request(
            {
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/png;base64,AAAA"},
                            },
                        ],
                    },
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "lookup", "arguments": '{"q": "llama"}'},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "a camelid"},
                ],
            }
        )
    )
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[1]["parts"][1] == {
        "type": "image",
        "source": "data:image/png;base64,… (inline image)",
    }
    assert messages[2]["parts"] == [
        {"type": "tool_call", "name": "lookup", "id": "call_1", "arguments": '{"q": "llama"}'}
    ]
    assert messages[3]["parts"] == [{"type": "tool_result", "id": "call_1", "text": "a camelid"}]


def test_anthropic_system_blocks_and_tool_use() -> None:
    """Anthropic: the top-level system first, content blocks as parts, tool_use a tool call."""
    messages = chat_messages(
        _request(
            {
                "system": [{"type": "text", "text": "You review drafts."}],
                "messages": [
                    {"role": "user", "content": "Review this."},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": "tu_1", "name": "grade", "input": {"x": 1}}
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "tu_1", "content": "B+"}
                        ],
                    },
                ],
            }
        )
    )
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["parts"] == [{"type": "text", "text": "You review drafts."}]
    assert messages[2]["parts"][0]["name"] == "grade"
    assert messages[3]["parts"] == [{"type": "tool_result", "id": "tu_1", "text": "B+"}]


def test_responses_api_and_gemini_bodies() -> None:
    """The Responses API's instructions and input, and Gemini's contents, read as messages."""
    responses = chat_messages(_request({"instructions": "Be terse.", "input": "Hello"}))
    assert [(m["role"], m["parts"][0]["text"]) for m in responses] == [
        ("system", "Be terse."),
        ("user", "Hello"),
    ]
    gemini = chat_messages(
        _request(
            {
                "systemInstruction": {"parts": [{"text": "Be kind."}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "Hi"}]},
                    {"role": "model", "parts": [{"text": "Hello!"}]},
                ],
            }
        )
    )
    assert [m["role"] for m in gemini] == ["system", "user", "assistant"]


def test_a_body_of_no_known_shape_has_no_messages() -> None:
    """A body none of the shapes fits gives no messages (the page shows its JSON)."""
    assert chat_messages(_request({"vector": [1, 2, 3]})) == []
    assert chat_messages({"method": "GET"}) == []


def test_response_messages_read_the_answer_and_fall_back_to_its_text() -> None:
    """An OpenAI completion's message with its tool call, an Anthropic message, else the text."""
    openai = response_messages(
        {
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": "Done.",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
                    }
                }
            ]
        },
        "Done.",
    )
    assert [p["type"] for p in openai[0]["parts"]] == ["text", "tool_call"]
    anthropic = response_messages(
        {"type": "message", "content": [{"type": "text", "text": "Fine."}]}, "Fine."
    )
    assert anthropic == [{"role": "assistant", "parts": [{"type": "text", "text": "Fine."}]}]
    assert response_messages(b"raw", "plain text")[0]["parts"][0]["text"] == "plain text"
