"""The JSON Schemas of the inference answers `emulator.inference.engine` builds (OpenAI's shapes),
and of what the OpenAI surface adds to them (`emulator.wire_oai.chat_completion`, `completion`).

The engine is the one place the answers are made; these describe them for the OpenAPI document,
and the test that checks real answers against that document keeps the two in step.
"""

from __future__ import annotations

from emulator import endpoints
from emulator.schema import (
    Components,
    Schema,
    array,
    const,
    enum,
    integer,
    nullable,
    number,
    obj,
    string,
)

COMPONENTS = Components()

_FINISH = enum(("stop", "length", "tool_calls"))
USAGE = COMPONENTS.add(
    "TokenUsage",
    obj({"prompt_tokens": integer(0), "completion_tokens": integer(0), "total_tokens": integer(0)}),
)
_TOOL_CALL = obj(
    {
        "id": string(),
        "type": const("function"),
        "function": obj({"name": string(), "arguments": string("JSON text")}),
    }
)


def _chat(oai: bool) -> Schema:
    """A chat completion; OpenAI's view adds the message's `refusal` and the choice's
    `logprobs`, which the emulator never has."""
    message = obj(
        {"role": const("assistant"), "content": nullable(string()),
         **({"refusal": {"type": "null"}} if oai else {})},
        {"tool_calls": array(_TOOL_CALL, minItems=1)},
    )  # fmt: skip
    choice = obj(
        {"index": integer(0), "message": message, "finish_reason": _FINISH,
         **({"logprobs": {"type": "null"}} if oai else {})}
    )  # fmt: skip
    return obj(
        {"id": string(pattern="^chatcmpl-"), "object": const("chat.completion"),
         "created": integer(0), "model": string(), "choices": array(choice), "usage": USAGE}
    )  # fmt: skip


def _completion(oai: bool) -> Schema:
    choice = obj(
        {"index": integer(0), "text": string(), "finish_reason": _FINISH,
         **({"logprobs": {"type": "null"}} if oai else {})}
    )  # fmt: skip
    return obj(
        {"id": string(pattern="^cmpl-"), "object": const("text_completion"),
         "created": integer(0), "model": string(), "choices": array(choice), "usage": USAGE}
    )  # fmt: skip


CHAT = COMPONENTS.add("ChatCompletion", _chat(oai=False))
OAI_CHAT = COMPONENTS.add("OaiChatCompletion", _chat(oai=True))
COMPLETION = COMPONENTS.add("TextCompletion", _completion(oai=False))
OAI_COMPLETION = COMPONENTS.add("OaiTextCompletion", _completion(oai=True))
EMBEDDINGS = COMPONENTS.add(
    "Embeddings",
    obj(
        {
            "object": const("list"),
            "data": array(
                obj(
                    {
                        "object": const("embedding"),
                        "index": integer(0),
                        "embedding": {"anyOf": [array(number()), string("float32 values, base64")]},
                    }
                )
            ),
            "model": string(),
            "usage": obj({"prompt_tokens": integer(0), "total_tokens": integer(0)}),
        }
    ),
)
IMAGES = COMPONENTS.add(
    "Images",
    obj(
        {
            "created": integer(0),
            "data": array(
                obj(
                    {},
                    {"url": string(format="uri"), "b64_json": string(), "revised_prompt": string()},
                )  # fmt: skip
            ),
            "model": string(),
            "usage": obj({"prompt_tokens": integer(0), "images": integer(1)}),
        }
    ),
)
#: a streamed chat answer: `data: {chunk}` events, then `data: [DONE]`
SSE = string("Server-sent events: chat.completion.chunk objects, then [DONE]")

#: the schema of each native inference route's answer (the `data` of its envelope)
ANSWERS: dict[str, Schema] = {
    endpoints.CHAT: CHAT,
    endpoints.GENERATE: COMPLETION,
    endpoints.EMBED: EMBEDDINGS,
    endpoints.IMAGES: IMAGES,
}
