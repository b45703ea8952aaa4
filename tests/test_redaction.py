"""workbench.redaction: secrets under sensitive names never reach the rendered bytes."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench._json import decode
from workbench.redaction import REDACTED, SENSITIVE_HEADERS, encode_redacted, sensitive_names
from workbench.store import Store
from workbench.testing import ModelServer

NAMES = [
    "api_key",
    "API-Key",
    "x-api-key",
    "X_Api-KEY",
    "Authorization",
    "password",
    "session_token",
    "Session-TOKEN",
]


@given(
    name=st.sampled_from(NAMES),
    secret=st.text(alphabet="abcdefXYZ0123456789", min_size=12, max_size=30),
    depth=st.integers(min_value=0, max_value=4),
)
def test_secret_at_any_depth_is_not_in_the_bytes(name: str, secret: str, depth: int) -> None:
    """A secret under a sensitive name, however deep and however spelt, is not in the output."""
    value: object = {name: secret, "keep": "visible"}
    for _ in range(depth):
        value = {"nested": [value]}
    data = encode_redacted(value, sensitive_names(["session_token"]))
    assert secret.encode() not in data
    assert b"visible" in data


def test_values_without_secrets_are_unchanged() -> None:
    """Without a sensitive name the bytes are the plain rendering."""
    value = {"prompt": "tell me a secret-free story", "n": [1, 2]}
    assert decode(encode_redacted(value, sensitive_names())) == value


def test_credential_headers_are_listed_as_sent() -> None:
    """Header names are kept in their wire spelling for response-header redaction."""
    assert {"authorization", "x-api-key", "cookie"} <= SENSITIVE_HEADERS


def test_scrubbing_keeps_json_valid_whatever_the_secret_looks_like() -> None:
    """A remembered secret that looks like JSON syntax is scrubbed only inside strings."""
    from workbench.redaction import forget_secrets, remember_secret

    remember_secret('a1", "b": [1')  # a value that would break JSON if replaced in raw bytes
    try:
        value = {"note": 'x a1", "b": [1 y', "n": 1}
        assert decode(encode_redacted(value, sensitive_names())) == {
            "note": "x [REDACTED] y",
            "n": 1,
        }
    finally:
        forget_secrets()


def test_a_secret_remembered_again_after_forgetting_is_scrubbed_again() -> None:
    """remember_secret skips values it has taken in, but forget_secrets forgets those too: the
    same credential remembered afresh is scrubbed, and one never remembered is not."""
    from workbench.redaction import forget_secrets, remember_secret, scrub_text

    secret = "Bearer wbtok-7f3a9c2e51"
    try:
        remember_secret(secret)
        remember_secret(secret)  # seen: taken in once
        assert scrub_text("sent wbtok-7f3a9c2e51 here") == "sent [REDACTED] here"
        forget_secrets()
        assert scrub_text("sent wbtok-7f3a9c2e51 here") == "sent wbtok-7f3a9c2e51 here"
        remember_secret(secret)
        assert scrub_text("sent wbtok-7f3a9c2e51 here") == "sent [REDACTED] here"
    finally:
        forget_secrets()


def test_url_query_credentials_are_scrubbed_from_strings() -> None:
    """A key in a URL query inside a recorded string is scrubbed."""
    data = encode_redacted({"url": "https://h/v1?key=AIzaSyExample&x=1"}, sensitive_names())
    assert decode(data) == {"url": "https://h/v1?key=[REDACTED]&x=1"}


# -- one set of rules: names ------------------------------------------------------------------

# Realistic credentials: what a probe plants, each in the shape its service issues.
OPENAI_KEY = "sk-proj-Q7f3kLm9Xv2Rt8Wz1Yb4Nc6Hd0Jp5Gs"
ANTHROPIC_KEY = "sk-ant-api03-Zx8Kq2Lm7Vn4Bc1Xz9Qw3Er6Ty0Ui5Op"
AWS_KEY_ID = "AKIAZ7Q3X9K2M4N6P8R1"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq3k9T2vLp"
GITHUB_TOKEN = "ghp_4fG7hJ2kL9mN3pQ6rS8tV1wX5yZ0aB2cD4eF"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyXzQyIiwiaWF0IjoxNzAwMDAwMDAwfQ"
    ".Qm9ndXNTaWduYXR1cmVGb3JUZXN0c09ubHkxMjM0NTY"
)
TOKEN = "tok_live_8f3a9c2e71b64d05"

COMMON_SECRET_NAMES = [
    "token",
    "auth",
    "client_token",
    "openai_key",
    "access_key",
    "sig",
    "signature",
    "AWS_SECRET_ACCESS_KEY",
    "aws_session_token",
    "x-auth-token",
    "apiKey",
    "accessToken",
    "clientSecret",
    "db_password",
    "private_key",
    "credentials",
    "session_token",
    "id_token",
    "webhook_secret",
]

ORDINARY_FIELDS: dict[str, object] = {
    "max_tokens": 512,
    "tokens": ["Hello", " world"],
    "prompt_tokens": 11,
    "input_tokens": 11,
    "cache_read_input_tokens": 3,
    "tokens_in": 11,
    "token_count": 9,
    "request_key": "0f3a9c2e71b64d05a1b2c3d4e5f60718",
    "cache_key": "c0ffee00c0ffee00c0ffee00",
    "prompt_cache_key": "user-42-session-7",
    "key": "monday2024",
    "keys": ["a1b2c3d4e5", "f6a7b8c9d0"],
    "author": "Ada Lovelace 1843",
    "authority": "example.org",
    "token_type": "Bearer",
    "next_page_token": "pg_7f3a9c2e71b64d05",
    "public_key": "pk_9f8e7d6c5b4a39281706",
    "keyword": "tokenization",
    "logprobs": {"content": [{"token": "Hello", "logprob": -0.1}, {"token": " world"}]},
}


@given(
    name=st.sampled_from(COMMON_SECRET_NAMES),
    secret=st.sampled_from([TOKEN, AWS_SECRET, "Xq9-vL2_mR7pT4wZ8kB3"]),
    depth=st.integers(min_value=0, max_value=3),
)
def test_secrets_under_common_names_are_redacted(name: str, secret: str, depth: int) -> None:
    """A credential under any common secret name (gitleaks/detect-secrets style) is redacted."""
    value: object = {name: secret, "note": "kept"}
    for _ in range(depth):
        value = {"nested": [value]}
    data = encode_redacted(value, sensitive_names())
    assert secret.encode() not in data
    assert b"kept" in data


def test_ordinary_fields_are_kept() -> None:
    """Token counts, request keys, authors, logprob tokens, pagination cursors: not secrets."""
    from workbench.redaction import redact_json

    assert redact_json(ORDINARY_FIELDS) == ORDINARY_FIELDS
    assert decode(encode_redacted(ORDINARY_FIELDS, sensitive_names())) == ORDINARY_FIELDS


@given(
    name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-.ATOKEN", min_size=1, max_size=24),
    number=st.integers() | st.floats(allow_nan=False) | st.booleans() | st.none(),
)
def test_numbers_survive_under_every_name_but_the_exact_ones(name: str, number: object) -> None:
    """The generic rules redact strings only: a count under a token-ish name is never lost."""
    from workbench.redaction import redact_json

    value = {name: number}
    if name.lower().replace("-", "_") not in frozenset(sensitive_names()):
        assert redact_json(value) == value


def test_one_name_list_for_queries_urls_forms_and_text() -> None:
    """?token=, sig= and access_key= are redacted in the recorded query and in any URL text:
    the query uses the same names as every other place."""
    from workbench.capture.canonical import canonical_request
    from workbench.redaction import scrub_text

    url = f"https://h/v1/x?token={TOKEN}&sig=Zm9vYmFyYmF6cXV4MTIz&access_key=ak9Xw2Lq7Vb3&n=1"
    canonical = canonical_request("GET", url, {}, None)
    assert dict(canonical["query"]) == {
        "token": REDACTED,
        "sig": REDACTED,
        "access_key": REDACTED,
        "n": "1",
    }
    text = scrub_text(f"GET {url} failed")
    assert TOKEN not in text and "Zm9vYmFy" not in text and "ak9Xw2" not in text
    assert text.endswith("&n=1 failed")


def test_name_value_pairs_in_text_are_scrubbed() -> None:
    """A log message's api_key=..., token: "...", or Authorization header keeps no value."""
    from workbench.redaction import scrub_text

    for line in (
        f"retrying with api_key={TOKEN}",
        f'payload {{"client_token": "{TOKEN}"}}',
        f"headers: Authorization: Bearer {TOKEN}",
        f"config={{'openai_key': '{TOKEN}'}}",
    ):
        assert TOKEN not in scrub_text(line), line
    prose = "the max_tokens: 512 and token_count=9; use the key: Enter"
    assert scrub_text(prose) == prose


@given(
    secret=st.sampled_from([OPENAI_KEY, ANTHROPIC_KEY, AWS_KEY_ID, GITHUB_TOKEN, JWT]),
    before=st.sampled_from(["", "key ", "(", '"', "value=", "Bearer "]),
    after=st.sampled_from(["", " ok", ")", '"', ",", "\n"]),
)
def test_well_known_key_shapes_are_scrubbed(secret: str, before: str, after: str) -> None:
    """sk-…, sk-ant-…, AKIA…, ghp_… and JWTs are scrubbed from text wherever they stand."""
    from workbench.redaction import scrub_text

    scrubbed = scrub_text(f"answer: {before}{secret}{after} done")
    assert secret not in scrubbed
    assert scrubbed.startswith("answer: ") and scrubbed.endswith(f"{after} done")


def test_credentials_in_url_userinfo_are_scrubbed() -> None:
    """postgres://user:password@host keeps the user and host, not the password."""
    from workbench.redaction import scrub_text

    assert scrub_text("dsn postgres://app:pa55w0rd-x@db:5432/x") == (
        f"dsn postgres://app:{REDACTED}@db:5432/x"
    )


def test_cloud_key_environment_names_are_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN and *_PASSWORD values are scrubbed once seen in the
    environment; PATH-like variables are not."""
    from workbench.redaction import remember_environment, scrub_text

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("PGPASSWORD", "correct-horse-7")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/ssh-XXXX1234/agent.77")
    remember_environment()
    text = scrub_text(f"{AWS_SECRET} correct-horse-7 /tmp/ssh-XXXX1234/agent.77")
    assert text == f"{REDACTED} {REDACTED} /tmp/ssh-XXXX1234/agent.77"


def test_the_shells_working_directory_is_not_taken_for_a_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store: Store
) -> None:
    """PWD, which every POSIX shell exports, is the working directory, not a password: paths
    under it stay as they are in recorded inputs and logs (a replay gets the same inputs)."""
    import workbench

    monkeypatch.setenv("PWD", str(tmp_path))
    monkeypatch.setenv("OLDPWD", str(tmp_path.parent))
    path = f"{tmp_path}/data.csv"
    with workbench.record("paths", inputs={"path": path}, store=store) as run:
        logging.getLogger("app").warning("reading %s", path)
    execution = run.execution()
    assert execution.inputs == {"path": path}
    assert [log.message for log in execution.logs] == [f"reading {path}"]


def test_allowlist_keeps_named_false_positives(tmp_path: Path) -> None:
    """capture.allowlist in workbench.yaml: listed fields and values that match are kept."""
    from workbench.config import load_config
    from workbench.redaction import redact_json, scrub_text, sensitive_names_for

    (tmp_path / "workbench.yaml").write_text(
        "capture:\n"
        "  sensitive_fields: [tenant]\n"
        "  allowlist:\n"
        "    fields: [csrf_token]\n"
        "    values: ['sk-test-[a-z0-9]+']\n"
    )
    names = sensitive_names_for(load_config(tmp_path / "workbench.yaml"))
    value = {
        "csrf_token": TOKEN,
        "token": TOKEN,
        "tenant": "acme",
        "note": "sk-test-abc123def456ghi789",
    }
    assert redact_json(value, names) == {
        "csrf_token": TOKEN,
        "token": REDACTED,
        "tenant": REDACTED,
        "note": "sk-test-abc123def456ghi789",
    }
    assert scrub_text("use sk-test-abc123def456ghi789", names) == "use sk-test-abc123def456ghi789"
    assert OPENAI_KEY not in scrub_text(f"use {OPENAI_KEY}", names)


def test_a_bad_allowlist_pattern_names_file_key_and_value(tmp_path: Path) -> None:
    """An allow-list value that is not a regular expression is a ConfigError naming it."""
    from workbench.config import load_config
    from workbench.exceptions import ConfigError

    (tmp_path / "workbench.yaml").write_text("capture:\n  allowlist:\n    values: ['sk-(']\n")
    with pytest.raises(ConfigError, match=r"allowlist.*sk-\("):
        load_config(tmp_path / "workbench.yaml")


# -- every artefact: secrets planted in every channel, every output scanned -------------------
#
# One recorded execution plants a distinct credential in each channel a probe would use: the
# environment, the SDK's key (echoed back by the model, plain and streamed), step parameters
# and results, a state, span attributes, log messages and extra fields, URL queries. Each test
# then scans one kind of artefact for every planted value.

PLANTED = {
    "api key (env, header, echoed answer)": OPENAI_KEY,
    "AWS_SECRET_ACCESS_KEY (env)": AWS_SECRET,
    "step parameter client_token": "tok_client_4f7a9c2e81b3",
    "state key openai_key": "okey_state_5b8c0d3f92a4",
    "span attribute token": "tok_span_6c9d1e4a03b5",
    "span attribute auth": "auth_span_7d0e2f5b14c6",
    "span attribute note (AKIA shape)": AWS_KEY_ID,
    "log message api_key=": "tok_logpair_8e1f3a6c25d7",
    "log message ?api_key= URL": "tok_logurl_9f2a4b7d36e8",
    "log extra token": "tok_logextra_0a3b5c8e47f9",
    "log message JWT": JWT,
    "request query token": "tok_query_1b4c6d9f58a0",
    "request query sig": "sig_query_2c5d7e0a69b1",
    "step result ghp_ shape": GITHUB_TOKEN,
}


def leaks(artefact: str | bytes) -> list[str]:
    """The planted secrets found in an artefact, by where they were planted."""
    data = artefact.encode() if isinstance(artefact, str) else artefact
    return [where for where, secret in PLANTED.items() if secret.encode() in data]


class OtlpSink:
    """An OTLP/HTTP trace endpoint on 127.0.0.1 keeping the raw protobuf bodies it is sent."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        self.bodies: list[bytes] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                sink.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclasses.dataclass
class Planted:
    store: Store
    execution_ids: list[str]
    log_file: Path
    stdout: str
    otlp: bytes


def _record_planted(store: Store, server: ModelServer, pipeline: str) -> str:
    import httpx
    import openai

    import workbench

    @workbench.step("fetch")
    def fetch(query: str, client_token: str) -> str:
        return f"fetched {query} with {GITHUB_TOKEN}"

    log = logging.getLogger("app.planted")
    with workbench.record(pipeline, inputs={"query": "alpacas"}, store=store) as run:
        fetch("alpacas", client_token=PLANTED["step parameter client_token"])
        workbench.state("config", {"openai_key": PLANTED["state key openai_key"], "k": 5})
        with workbench.span(
            "lookup",
            token=PLANTED["span attribute token"],
            auth=f"Bearer {PLANTED['span attribute auth']}",
            note=f"as {AWS_KEY_ID}",
            max_tokens=512,
        ):
            log.warning(
                "retry with api_key=%s after %s",
                PLANTED["log message api_key="],
                f"https://h.example/v1?api_key={PLANTED['log message ?api_key= URL']}&n=1",
                extra={"token": PLANTED["log extra token"], "attempt": 2},
            )
            log.warning("session %s expired", JWT)
        with workbench.span("plain", note=f"as {AWS_KEY_ID}"):  # only a shape gives it away
            pass
        client = openai.OpenAI(base_url=server.openai_base_url, max_retries=0)  # key: env
        question = [{"role": "user", "content": f"{pipeline} repeats my key {OPENAI_KEY}"}]
        client.chat.completions.create(model="gpt-4o-mini", messages=question, max_tokens=64)
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=question, max_tokens=64, stream=True
        )
        for _ in stream:
            pass
        httpx.get(
            f"{server.url}/v1/models?token={PLANTED['request query token']}"
            f"&sig={PLANTED['request query sig']}&limit=2"
        )
    return run.id


@pytest.fixture
def planted(
    store: Store,
    model_server: ModelServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Planted]:
    from workbench import _hooks
    from workbench.config import WorkbenchConfig
    from workbench.monitoring.tracing._logs import configure_logging
    from workbench.monitoring.tracing._otel import TraceExporter

    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    log_file = tmp_path / "logs" / "workbench.log"
    setup = configure_logging(
        WorkbenchConfig.model_validate(
            {
                "logging": {
                    "outputs": [
                        {"type": "file", "path": str(log_file)},
                        {"type": "stdout"},
                        {"type": "stdout", "format": "text"},
                    ]
                }
            }
        )
    )
    sink = OtlpSink()
    exporter = TraceExporter(
        WorkbenchConfig.model_validate(
            # With prompts and answers exported too: the content attributes leak nothing either.
            {
                "tracing": {
                    "enabled": True,
                    "capture_content": True,
                    "config": {"endpoint": sink.url},
                }
            }
        ).tracing
    )
    _hooks.add_observer(exporter)
    try:
        ids = [_record_planted(store, model_server, name) for name in ("planted", "planted_b")]
        exporter.force_flush()
    finally:
        _hooks.remove_observer(exporter)
        exporter.shutdown()
        setup.remove()
        sink.close()
    yield Planted(store, ids, log_file, capsys.readouterr().out, b"".join(sink.bodies))


def _every_stored_byte(path: Path) -> bytes:
    """The store file and its WAL as they are on disk, plus every column of every row with
    compressed blobs decompressed: what anyone holding the file can read."""
    import sqlite3

    from workbench.store._codec import decompress

    found = [p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists()]
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            columns = [c[0] for c in cursor.description]
            for row in cursor:
                values = dict(zip(columns, row, strict=True))
                if table == "blobs":
                    found.append(decompress(values["codec"], values["data"]))
                found.extend(
                    v if isinstance(v, bytes) else str(v).encode() for v in values.values()
                )
    finally:
        conn.close()
    return b"\n".join(found)


def test_no_planted_secret_is_in_the_store(planted: Planted) -> None:
    """The SQLite file, its WAL and every decompressed blob hold none of the planted secrets,
    while token counts, request keys and ordinary fields are all still there."""
    planted.store.flush()
    assert leaks(_every_stored_byte(planted.store.path)) == []
    execution = planted.store.get_execution(planted.execution_ids[0])
    calls = [call for call in execution.model_calls if call.provider == "openai"]
    assert len(calls) == 2 and all(call.input_tokens and call.output_tokens for call in calls)
    assert all(len(call.request_key) == 32 for call in calls)
    assert all(call.request["body"]["max_tokens"] == 64 for call in calls)
    (span,) = [span for span in execution.spans if span.name == "lookup"]
    assert span.attributes["max_tokens"] == 512
    assert execution.states[0].value == {"openai_key": REDACTED, "k": 5}
    (log,) = [log for log in execution.logs if "retry" in log.message]
    assert log.fields == {"token": REDACTED, "attempt": 2}
    assert log.message.endswith("&n=1")


def test_a_key_echoed_in_an_answer_is_scrubbed_from_every_derived_field(
    planted: Planted,
) -> None:
    """ModelCall.text of a plain and of a streamed answer that echo the key keeps no key, and
    the scrubbed stream still replays: its chunks add up to the scrubbed body."""
    execution = planted.store.get_execution(planted.execution_ids[0])
    calls = [call for call in execution.model_calls if call.provider == "openai"]
    assert [call.streamed for call in calls] == [False, True]
    for call in calls:
        assert call.text is not None and REDACTED in call.text
        assert leaks(call.text) == [] and leaks(repr(call)) == []
    answers = planted.store.recorded_responses(planted.execution_ids[0])
    assert all(answer.damage is None for answer in answers)


def test_no_planted_secret_is_in_the_log_file_or_stdout(planted: Planted) -> None:
    """configure_logging's file and stdout outputs (JSON and text) hold no planted secret,
    and the lines are still there and still JSON."""
    text = planted.log_file.read_text()
    assert "retry with api_key=" in text and "session" in text
    for line in text.splitlines():
        json.loads(line)
    assert leaks(text) == []
    assert "retry with api_key=" in planted.stdout
    assert leaks(planted.stdout) == []


def test_no_planted_secret_is_exported_over_otlp(planted: Planted) -> None:
    """The OTLP payloads a local collector received hold no planted secret, but do hold the
    spans, with their token counts, and (content capture on) the prompt around the key."""
    assert b"lookup" in planted.otlp and b"gen_ai.usage.input_tokens" in planted.otlp
    assert b"gen_ai.input.messages" in planted.otlp and b"input.value" in planted.otlp
    assert b"repeats my key" in planted.otlp
    assert leaks(planted.otlp) == []


def test_no_planted_secret_is_in_cli_json(planted: Planted) -> None:
    """`runs show --json`, `runs list --json` and `diff --json` hold no planted secret."""
    from click.testing import CliRunner

    from workbench.cli import cli

    runner = CliRunner()
    db = ["--db", str(planted.store.path)]
    first, second = planted.execution_ids
    for args in (["runs", "show", first, "--json"], ["runs", "list", "--json"]):
        result = runner.invoke(cli, [*args, *db], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert leaks(result.output) == [], args
    shown = json.loads(runner.invoke(cli, ["runs", "show", first, "--json", *db]).output)
    assert all(len(call["request_key"]) == 32 for call in shown["model_calls"])
    result = runner.invoke(cli, ["diff", first, second, "--json", *db])
    assert leaks(result.output) == []


def test_no_planted_secret_is_in_html_views(planted: Planted) -> None:
    """The notebook HTML of a diff between the two planted runs holds no planted secret."""
    from workbench.diff import compare_executions

    first, second = planted.execution_ids
    diff = compare_executions(first, second, store=planted.store)
    assert leaks(diff._repr_html_()) == []


def test_no_secret_reaches_a_webhook_body(monkeypatch: pytest.MonkeyPatch) -> None:
    """An alert whose rule text or labels hold a credential reaches the webhook scrubbed."""
    from workbench.config import WorkbenchConfig
    from workbench.monitoring.alerts._alerts import Alert
    from workbench.monitoring.alerts._receivers import deliver

    bodies: list[bytes] = []

    def post(url: str, payload: dict[str, object], timeout: float) -> None:
        bodies.append(json.dumps(payload).encode())

    monkeypatch.setattr("workbench.monitoring.alerts._receivers._post", post)
    secret = PLANTED["request query token"]
    alert = Alert(
        name="upstream_errors",
        state="firing",
        severity="critical",
        value=3.0,
        labels={"endpoint": f"https://api.example/v1?token={secret}", "key_hint": OPENAI_KEY},
        annotations={"summary": "Upstream failing", "description": f"auth: Bearer {secret}"},
        starts_at=0.0,
        expr="errors > 1",
    )
    alerting = WorkbenchConfig.model_validate(
        {"alerting": {"receivers": {"hook": {"webhook": "https://hooks.example/x"}}}}
    ).alerting
    assert deliver(alert, "hook", alerting.receivers["hook"], alerting).ok
    (body,) = bodies
    assert b"Upstream failing" in body
    assert leaks(body) == []


def test_secrets_already_in_a_store_are_scrubbed_on_every_output(
    store: Store, model_server: ModelServer
) -> None:
    """A store written before these rules (a key in a span attribute, an answer text, a log
    message) shows no key in `runs show --json`, in an OTLP export or in a diff's HTML."""
    import sqlite3

    import openai
    from click.testing import CliRunner

    import workbench
    from workbench.cli import cli
    from workbench.config import WorkbenchConfig
    from workbench.diff import compare_executions
    from workbench.monitoring.tracing._otel import TraceExporter

    client = openai.OpenAI(base_url=model_server.openai_base_url, api_key="sk-x", max_retries=0)
    ids = []
    for word in ("one", "two"):
        with workbench.record("old", inputs={}, store=store) as run:
            with workbench.span("lookup", note="plain"):
                logging.getLogger("app.old").warning("plain %s", word)
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": word}]
            )
        ids.append(run.id)
    store.flush()
    conn = sqlite3.connect(store.path)
    with conn:
        conn.execute(
            "UPDATE spans SET attributes = ? WHERE name = 'lookup'",
            (json.dumps({"note": f"old {OPENAI_KEY}"}),),
        )
        conn.execute("UPDATE model_calls SET text = text || ' ' || ?", (GITHUB_TOKEN,))
        conn.execute("UPDATE logs SET message = message || ' token=' || ?", (TOKEN,))
    conn.close()
    secrets = (OPENAI_KEY, GITHUB_TOKEN, TOKEN)

    shown = CliRunner().invoke(cli, ["runs", "show", ids[0], "--json", "--db", str(store.path)])
    assert shown.exit_code == 0 and "lookup" in shown.output
    assert [s for s in secrets if s in shown.output] == []

    sink = OtlpSink()
    exporter = TraceExporter(
        WorkbenchConfig.model_validate(
            {"tracing": {"enabled": True, "config": {"endpoint": sink.url}}}
        ).tracing
    )
    try:
        exporter.export_execution(store, ids[0])
        exporter.force_flush()
    finally:
        exporter.shutdown()
        sink.close()
    exported = b"".join(sink.bodies)
    assert b"lookup" in exported
    assert [s for s in secrets if s.encode() in exported] == []

    html = compare_executions(ids[0], ids[1], store=store)._repr_html_()
    assert "one" in html and [s for s in secrets if s in html] == []
