"""workbench.yaml: read once into typed objects, with errors naming file, key and value."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import workbench
from workbench.cli import cli
from workbench.config import load_config
from workbench.exceptions import ConfigError


def test_no_file_gives_defaults(tmp_path: Path) -> None:
    """Without a workbench.yaml every section has its defaults."""
    config = load_config()
    assert config.store.path is None and config.capture.sensitive_fields == []


def test_sections_are_parsed(tmp_path: Path) -> None:
    """The store, capture and cost_tracking sections become typed values."""
    (tmp_path / "workbench.yaml").write_text(
        "store: {path: data/w.db}\ncapture: {volatile_fields: [user]}\n"
        "cost_tracking:\n  providers:\n    openai:\n      models:\n"
        "        gpt-4: {input_cost_per_1k: 0.03, output_cost_per_1k: 0.06}\n"
        "monitoring: {enabled: true}\n"
    )
    config = load_config()
    assert config.store_path() == tmp_path / "data" / "w.db"
    assert config.capture.volatile_fields == ["user"]
    assert config.cost_tracking.providers["openai"].models["gpt-4"].output_cost_per_1k == 0.06


def test_unknown_section_names_file_and_allowed_keys(tmp_path: Path) -> None:
    """A misspelt section is refused with the file, the key and the allowed sections."""
    (tmp_path / "workbench.yaml").write_text("stroe: {path: x}\n")
    with pytest.raises(ConfigError, match=r"workbench.yaml: key 'stroe'.*allowed.*store"):
        load_config()


def test_unknown_key_in_a_section_lists_that_sections_keys(tmp_path: Path) -> None:
    """A misspelt key inside a section lists the keys that section accepts."""
    (tmp_path / "workbench.yaml").write_text("capture:\n  sensitive: [x]\n")
    with pytest.raises(
        ConfigError,
        match=r"'capture.sensitive'.*allowed keys here: allowlist, enabled, "
        r"sensitive_fields, volatile_fields",
    ):
        load_config()


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    """A negative price is refused naming its full key and value."""
    (tmp_path / "workbench.yaml").write_text(
        "cost_tracking:\n  providers:\n    openai:\n      models:\n"
        "        gpt-4: {input_cost_per_1k: -1, output_cost_per_1k: 0.06}\n"
    )
    with pytest.raises(
        ConfigError,
        match=r"cost_tracking.providers.openai.models.gpt-4"
        r".input_cost_per_1k' has value -1",
    ):
        load_config()


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    """Broken YAML is refused with the file and line."""
    (tmp_path / "workbench.yaml").write_text("store:\n  path: [unclosed\n")
    with pytest.raises(ConfigError, match=r"workbench.yaml, line \d+: not valid YAML"):
        load_config()


def test_workbench_config_env_must_name_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """WORKBENCH_CONFIG pointing nowhere is an error that says how to fix it."""
    monkeypatch.setenv("WORKBENCH_CONFIG", "/nonexistent/workbench.yaml")
    with pytest.raises(ConfigError, match="names no file"):
        load_config()


def test_malformed_volatile_field_is_refused_at_load(tmp_path: Path) -> None:
    """A volatile field with an empty path segment is a ConfigError when the file is read."""
    (tmp_path / "workbench.yaml").write_text("capture:\n  volatile_fields: ['metadata..id']\n")
    with pytest.raises(
        ConfigError, match=r"'capture.volatile_fields'.*'metadata..id' is not a field name"
    ):
        load_config()


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    """A workbench.yaml saved in another encoding is one ConfigError naming the file, the byte
    and the fix, from load_config, from record() and from the CLI: no raw traceback."""
    path = tmp_path / "workbench.yaml"
    path.write_bytes("store:\n  path: r\u00e9sultats.db\n".encode("latin-1"))
    expected = rf"{path}: .*not UTF-8 .*line 2.*save it as UTF-8"
    with pytest.raises(ConfigError, match=expected):
        load_config()
    with pytest.raises(ConfigError, match=expected), workbench.record("p", inputs={}):
        pass
    result = CliRunner().invoke(cli, ["runs", "list"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(path) in line and "UTF-8" in line


def test_providers_map_and_list_forms_are_parsed(tmp_path: Path) -> None:
    """providers: takes {url: provider} or a list of {url, provider}, as one list of entries."""
    (tmp_path / "workbench.yaml").write_text(
        "providers: {'http://gpu-box:9000': vllm, 'https://llm.internal/v1': openai}\n"
    )
    routes = [(route.url, route.provider) for route in load_config().providers]
    assert routes == [("http://gpu-box:9000", "vllm"), ("https://llm.internal/v1", "openai")]
    (tmp_path / "workbench.yaml").write_text(
        "providers:\n  - {url: 'http://gpu-box:9000', provider: ollama}\n"
    )
    assert [route.provider for route in load_config().providers] == ["ollama"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("providers: {'http://gpu-box:9000': vlm}", r"'vlm' for 'http://gpu-box:9000'.*vllm"),
        ("providers: {'gpu-box:9000': vllm}", r"'gpu-box:9000' is not a base URL"),
        ("providers: {'http://gpu-box:99999': vllm}", r"is not a base URL"),
        ("providers: vllm", r"providers must map base URLs to provider names"),
        ("providers: [{url: 'http://gpu-box'}]", r"providers.0.provider"),
    ],
)
def test_a_bad_providers_entry_is_a_config_error_naming_it(
    tmp_path: Path, text: str, message: str
) -> None:
    """A misspelt provider, a URL without a scheme or port in range, a bare value: ConfigError."""
    (tmp_path / "workbench.yaml").write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config()
