"""Drives a live brandvoice server with the official `openai` package.

Usage: python3 tests/openai_client.py http://127.0.0.1:PORT/v1
Prints one JSON line with what it saw; exits non-zero on any failure.
"""
import json
import sys

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=base, api_key="not-checked-yet")

models = [m.id for m in client.models.list()]
assert "brandvoice/tunely/twitter" in models, models

messages = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "My playlist vanished after the update, what happened?"},
]
r = client.chat.completions.create(
    model="brandvoice/tunely/twitter", messages=messages, max_tokens=24, seed=5, n=2,
    extra_body={"facts": [{"text": "a fix ships on Friday"}]},
)
assert r.object == "chat.completion", r
assert r.choices and r.choices[0].message.role == "assistant", r
text = r.choices[0].message.content
assert text and text.strip(), r
assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage

stream = client.chat.completions.create(
    model="brandvoice/tunely/twitter", messages=messages, max_tokens=24, seed=5, n=2,
    extra_body={"facts": [{"text": "a fix ships on Friday"}]},
    stream=True, stream_options={"include_usage": True},
)
parts, finish, usage, chunks = [], None, None, 0
for chunk in stream:
    chunks += 1
    assert chunk.object == "chat.completion.chunk", chunk
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        if c.index == 0 and c.delta.content:
            parts.append(c.delta.content)
        if c.index == 0 and c.finish_reason:
            finish = c.finish_reason
streamed = "".join(parts)
assert streamed == text, (streamed, text)
assert finish == "stop", finish
assert usage is not None and usage.total_tokens > 0, usage

try:
    client.chat.completions.create(model="brandvoice/nobody/twitter", messages=messages, max_tokens=8)
    raise AssertionError("an unknown brand must fail")
except openai.UnprocessableEntityError as e:
    assert e.status_code == 422
    assert e.body["field"] == "model", e.body

print(json.dumps({"models": len(models), "text": text, "chunks": chunks, "choices": len(r.choices)}))
