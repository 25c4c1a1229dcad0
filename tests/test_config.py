"""Config loading: precise errors that name file, line and key, and never echo a secret."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from adapters.errors import ConfigError
from sync.config import Settings, load_config

REPO = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-value-that-must-never-print"


def problems(path: Path, environ: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ or {})
    message = str(caught.value)
    assert SECRET not in message
    return message.splitlines()


def test_example_config_documents_the_defaults():
    """config.example.toml parses cleanly and every value in it equals the built-in default,
    so "keys you leave out take the values shown here" is true."""
    config = load_config(REPO / "config.example.toml", environ={})
    assert config.settings == Settings()


def test_example_config_documents_every_key():
    """Every key of every section appears in config.example.toml."""
    text = (REPO / "config.example.toml").read_text()
    raw = tomllib.loads(text)

    def walk(model, data, where):
        for name, field in type(model).model_fields.items():
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                assert name in data, f"section [{where}{name}] missing from config.example.toml"
                walk(value, data[name], f"{where}{name}.")
            elif name in ("password_env", "port", "token_env") and value is None:  # unset by default
                assert f"# {name} = " in text, f"key {where}{name} missing from config.example.toml"
            else:
                assert name in data, f"key {where}{name} missing from config.example.toml"

    walk(Settings(), raw, "")


def test_missing_file_is_one_clear_error(tmp_path):
    assert problems(tmp_path / "nope.toml") == [f"{tmp_path / 'nope.toml'}: config file not found "
                                                "(copy config.example.toml to start one)"]


def test_toml_syntax_error_names_the_line(write_config):
    path = write_config("[state]\nurl = \nretention_days = 1\n")
    [line] = problems(path)
    assert line.startswith(f"{path}: not valid TOML:") and "line 2" in line


def test_unknown_key_names_file_line_and_suggests(write_config):
    path = write_config("""
        [collector]
        prot = 8000
    """)
    assert problems(path) == [f"{path}:3: [collector] prot: unknown key (did you mean 'port'?)"]


def test_wrong_type_names_the_expected_type(write_config):
    path = write_config("""
        [schedule]
        enrich_seconds = "often"
        [collector]
        require_consent = "maybe"
    """)
    assert problems(path) == [
        f"{path}:3: [schedule] enrich_seconds: expected a valid number, unable to parse string as a number",
        f"{path}:5: [collector] require_consent: expected a valid boolean, unable to interpret input",
    ]


def test_missing_required_key(write_config):
    """measurement_id is required once GA4 is enabled; a landing page group needs both keys."""
    path = write_config("""
        [ga4]
        enabled = true
        [journey]
        landing_page_groups = [{ pattern = "/blog/*" }]
    """)
    lines = problems(path, {"CLOSEDLOOP_GA4_API_SECRET": SECRET})
    assert lines == [f"{path}:5: [journey.landing_page_groups] group: required key is missing"]
    path = write_config("""
        [ga4]
        enabled = true
    """)
    assert problems(path, {"CLOSEDLOOP_GA4_API_SECRET": SECRET}) == [
        f"{path}:2: [ga4] measurement_id: required when [ga4] enabled = true (e.g. \"G-ABC123XYZ\")"]


def test_unset_secret_env_var_names_the_variable(write_config):
    path = write_config("""
        [hubspot]
        enabled = true
        access_token_env = "MY_HUBSPOT_TOKEN"
    """)
    assert problems(path) == [f"{path}:4: [hubspot] access_token_env: environment variable MY_HUBSPOT_TOKEN is not set "
                              "(it should hold the private app or service key token)"]
    config = load_config(path, environ={"MY_HUBSPOT_TOKEN": SECRET})
    assert config.secret("hubspot", "access_token_env") == SECRET
    assert SECRET not in repr(config)


def test_secret_written_in_the_file_is_refused_without_echo(write_config):
    path = write_config(f"""
        [hubspot]
        enabled = true
        access_token = "{SECRET}"
    """)
    lines = problems(path, {"CLOSEDLOOP_HUBSPOT_TOKEN": "x" * 10})
    assert lines == [f"{path}:4: [hubspot] access_token: secrets are not read from the file: set "
                     "access_token_env = \"ENV_VAR_NAME\" and put the value in that environment variable"]


def test_secret_in_a_wrongly_typed_key_is_not_echoed(write_config):
    path = write_config(f"""
        [salesforce]
        timeout_seconds = "{SECRET}"
        api_version = "{SECRET}"
        [state]
        url = "postgresql+psycopg://user:{SECRET}@db/x"
        retention_days = "{SECRET}"
    """)
    lines = problems(path)
    assert len(lines) == 3  # the URL itself is valid; three wrong types/formats


def test_database_password_never_printed(write_config, tmp_path):
    path = write_config(f"""
        [state]
        url = "postgresql+psycopg://closedloop:{SECRET}@db.internal:5432/closedloop"
    """)
    config = load_config(path, environ={})
    assert SECRET not in config.safe_database_url
    assert SECRET in config.database_url  # what the engine gets
    path = write_config("""
        [state]
        url = "postgresql+psycopg://closedloop@db.internal/closedloop"
        password_env = "DB_PASSWORD"
    """)
    assert problems(path) == [f"{path}:4: [state] password_env: environment variable DB_PASSWORD is not set "
                              "(it should hold the database password)"]
    config = load_config(path, environ={"DB_PASSWORD": SECRET})
    assert SECRET in config.database_url and SECRET not in config.safe_database_url


def test_bad_database_url(write_config):
    path = write_config("""
        [state]
        url = "mysql://x@y/z"
    """)
    assert problems(path) == [f"{path}:3: [state] url: expected a sqlite:/// or postgresql+psycopg:// URL"]


def test_every_problem_is_reported_at_once(write_config):
    path = write_config("""
        [collector]
        port = 70000
        [ga4]
        endpoint = "ftp://example.com"
        measurement_id = "UA-1234"
        [salesforce]
        auth = "password"
        [logging]
        format = "xml"
    """)
    lines = problems(path)
    assert [line.split(": ")[1] for line in lines] == [
        "[collector] port", "[ga4] endpoint", "[ga4] measurement_id", "[salesforce] auth", "[logging] format"]
    assert "expected 'client_credentials', 'jwt' or 'refresh_token'" in lines[3]
    assert "G-ABC123XYZ" in lines[2]


def test_salesforce_client_credentials_needs_my_domain(write_config):
    path = write_config("""
        [salesforce]
        enabled = true
        login_url = "https://login.salesforce.com"
    """)
    env = {"CLOSEDLOOP_SALESFORCE_CLIENT_ID": "id", "CLOSEDLOOP_SALESFORCE_CLIENT_SECRET": SECRET}
    [line] = problems(path, env)
    assert "My Domain" in line and line.startswith(f"{path}:4: [salesforce] login_url:")


def test_relative_paths_are_relative_to_the_config_file(write_config, tmp_path, monkeypatch):
    path = write_config("""
        [state]
        url = "sqlite:///data/state.db"
    """)
    monkeypatch.chdir("/")
    config = load_config(path, environ={})
    assert config.database_url == f"sqlite:///{tmp_path / 'data' / 'state.db'}"


def test_every_path_in_a_config_is_read_from_the_configs_folder(write_config, tmp_path, monkeypatch):
    """The mapping file, the CA bundle and the JWT key, like the SQLite file: relative to the
    config, wherever closedloop is started (the sandbox's config relies on it)."""
    from sync.ops.connections import DEFAULT_MAPPINGS, Connections

    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "sf.toml").write_text((DEFAULT_MAPPINGS / "salesforce.toml").read_text())
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("not checked until a connection is made")
    path = write_config("""
        [salesforce]
        enabled = true
        login_url = "https://example.my.salesforce.com"
        ca_bundle = "certs/ca.pem"
        mapping = "maps/sf.toml"
    """)
    monkeypatch.chdir("/")
    connections = Connections(load_config(path, environ={"CLOSEDLOOP_SALESFORCE_CLIENT_ID": "id",
                                                         "CLOSEDLOOP_SALESFORCE_CLIENT_SECRET": "secret"}))
    assert connections.mapping("salesforce").path == str(tmp_path / "maps" / "sf.toml")
    assert connections.adapter("salesforce").http.verify == str(tmp_path / "certs" / "ca.pem")


def test_no_file_means_built_in_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None, environ={})
    assert config.path is None and config.settings == Settings()
    assert config.database_url == f"sqlite:///{tmp_path / 'state' / 'closedloop.db'}"


def test_ad_platform_sections_name_the_stage_and_the_missing_keys(write_config):
    path = write_config("""
        [google_ads]
        enabled = true
        [google_ads.conversions.qualified]
        conversion_action_id = "12"
        """)
    lines = problems(path)
    assert any(re.search(r"\.toml:\d+: \[google_ads\.conversions\] qualified: unknown stage 'qualified': expected "
                         r"\"won\" or an event name of \[lifecycle\.\*\]", line) for line in lines), lines
    assert any(re.search(r"\.toml:\d+: \[google_ads\] customer_id: required when \[google_ads\] enabled = true", line)
               for line in lines), lines
    [line] = problems(write_config('[meta]\napi_version = "26.0"\n'))
    assert line.endswith(':2: [meta] api_version: expected a Graph API version like "v26.0"')


def test_ad_platform_secrets_are_required_only_when_enabled(write_config):
    path = write_config("""
        [google_ads]
        enabled = true
        customer_id = "1234567890"
        [google_ads.conversions.won]
        conversion_action_id = "987"
        [meta]
        enabled = true
        dataset_id = "123"
        [meta.conversions.won]
        event_name = "Purchase"
        """)
    lines = problems(path)
    assert any("[google_auth] credentials_env: environment variable CLOSEDLOOP_GOOGLE_CREDENTIALS is not set" in line
               for line in lines)
    assert any("[meta] access_token_env: environment variable CLOSEDLOOP_META_ACCESS_TOKEN is not set" in line
               for line in lines)
    config = load_config(path, environ={"CLOSEDLOOP_GOOGLE_CREDENTIALS": SECRET, "CLOSEDLOOP_META_ACCESS_TOKEN": SECRET})
    assert config.settings.meta.consent.without_consent == "skip"
