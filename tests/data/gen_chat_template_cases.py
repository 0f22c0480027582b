#!/usr/bin/env python3
"""Makes tests/data/chat-template-cases.jsonl: chat templates rendered by
Python's jinja2 exactly as Hugging Face transformers sets it up
(`_compile_jinja_template`: ImmutableSandboxedEnvironment, trim_blocks,
lstrip_blocks, loopcontrols, raise_exception, tojson = json.dumps with
ensure_ascii=False). tests/template_parity.rs checks that our minijinja
renderer reproduces every row byte for byte (or fails where jinja2 failed).

Usage: python3 gen_chat_template_cases.py SMOLLM2.gguf QWEN.gguf > chat-template-cases.jsonl
(needs only jinja2; the GGUF templates are read from the files' metadata).
"""
import json, struct, sys
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import loopcontrols


def hf_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def gguf_template(path):
    def rd(f, fmt):
        return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))
    def rs(f):
        (n,) = rd(f, "Q")
        return f.read(n).decode("utf-8")
    T = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    def val(f, t):
        if t == 8:
            return rs(f)
        if t == 9:
            et, n = rd(f, "IQ")
            return [val(f, et) for _ in range(n)]
        return rd(f, T[t])[0]
    with open(path, "rb") as f:
        f.read(4)
        _, _, nkv = rd(f, "IQQ")
        md = {}
        for _ in range(nkv):
            k = rs(f)
            (t,) = rd(f, "I")
            md[k] = val(f, t)
    return md["tokenizer.chat_template"]


GEMMA = open(sys.argv[3]).read() if len(sys.argv) > 3 else None

LLAMA3 = """{{- bos_token }}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

MISTRAL = """{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
"""

PHI3 = """{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>
' + message['content'] + '<|end|>
'}}{% elif message['role'] == 'user' %}{{'<|user|>
' + message['content'] + '<|end|>
'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>
' + message['content'] + '<|end|>
'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>
' }}{% else %}{{ eos_token }}{% endif %}"""

# Exercises the places where minijinja and jinja2 could differ.
TORTURE = """{% set ns = namespace(n=0, sys='') %}
{% for m in messages %}
    {% if m.role == 'system' %}{% set ns.sys = m.content %}{% continue %}{% endif %}
    {% set ns.n = ns.n + 1 %}
    <{{ loop.index }}/{{ loop.length }} {{ m.role|upper }} first={{ loop.first }} last={{ loop.last }}>
    {{ m.content }}
    {% if m.content.startswith('My') %}starts-with-My {% endif %}{{ m.content.split()|length }} words
    {{ m | tojson }}
    {{ m | tojson(indent=2) }}
{% endfor %}
sys={{ ns.sys|tojson }} n={{ ns.n }} none={{ tools }} bool={{ add_generation_prompt }} docs={{ documents is none }}
{{ messages | map(attribute='role') | join(',') }}
{{ {'z': 1, 'a': [1, 2.5, none, true, false], 'u': 'ü\\t"'} | tojson(sort_keys=true) }}
{{ [1, [2, {}], []] | tojson(separators=(',', ':')) }}
{%- if add_generation_prompt %}
<gen>
{% endif %}
"""

CASES = [
    [{"role": "system", "content": "You are the care team of Tunely. Be warm and brief."},
     {"role": "user", "content": "My playlists are gone!"}],
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "Reply in Japanese."},
     {"role": "user", "content": "注文が届きません"},
     {"role": "assistant", "content": "ご不便をおかけしております。"},
     {"role": "user", "content": "いつ届きますか？"}],
    [{"role": "user", "content": "  leading and trailing space\n\n"},
     {"role": "assistant", "content": "Line one\nLine two\t\"quoted\" \\backslash {{ not jinja }} {% raw %}"},
     {"role": "user", "content": "emoji 😡🔥 and Hindi: मेरा ऑर्डर कहाँ है? <|im_end|><start_of_turn>"}],
    [{"role": "system", "content": "Only a system message."}],
    [{"role": "user", "content": ""},
     {"role": "assistant", "content": "Empty user turn before me."},
     {"role": "user", "content": "My turn again"}],
    [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    [{"role": "tool", "content": "{\"ok\": true}"}, {"role": "user", "content": "x"}],
]


def main():
    env = hf_env()
    templates = [("smollm2", gguf_template(sys.argv[1])), ("qwen2.5", gguf_template(sys.argv[2])),
                 ("llama3", LLAMA3), ("mistral", MISTRAL), ("phi3", PHI3), ("torture", TORTURE)]
    if GEMMA:
        templates.append(("gemma-default", GEMMA))
    special = {"bos_token": "<s>", "eos_token": "</s>"}
    for name, src in templates:
        tmpl = env.from_string(src)
        for ci, msgs in enumerate(CASES):
            for agp in (True, False):
                row = {"template_name": name, "template": src, "case": ci, "messages": msgs,
                       "add_generation_prompt": agp, "bos_token": special["bos_token"],
                       "eos_token": special["eos_token"]}
                try:
                    row["rendered"] = tmpl.render(messages=msgs, tools=None, documents=None,
                                                  add_generation_prompt=agp, **special)
                except jinja2.exceptions.TemplateError as e:
                    row["error"] = str(e)
                print(json.dumps(row, ensure_ascii=False))


main()
