"""chi-up with the openrc Chameleon's dashboard gives: ``OS_AUTH_TYPE=v3oidcpassword`` through
the fake's Keycloak (discovery, token endpoint) and Keystone federation, with keystoneauth1's real
plugin; no secret (password, client secret, access or Keystone token) in any output or file."""

from __future__ import annotations

from tests.fakechi.fixtures import point_chi_at

from .cli_fixtures import assert_no_secrets, cli  # noqa: F401  (cli is a fixture)

OIDC_VARS = ("OS_AUTH_TYPE", "OS_IDENTITY_PROVIDER", "OS_PROTOCOL", "OS_CLIENT_ID",
             "OS_CLIENT_SECRET", "OS_DISCOVERY_ENDPOINT", "OS_ACCESS_TOKEN_TYPE", "OS_USERNAME",
             "OS_PROJECT_NAME", "OS_PROJECT_DOMAIN_NAME")


def _openrc(fake, path):
    """Like the dashboard's file: the password is asked for, everything else is written out."""
    env = fake.oidc_env
    lines = ["#!/usr/bin/env bash", f"export OS_AUTH_URL={env['OS_AUTH_URL']}",
             *(f'export {k}="{env[k]}"' for k in OIDC_VARS),
             'echo "Please enter your Chameleon password: "', "read -sr OS_PASSWORD_INPUT",
             "export OS_PASSWORD=$OS_PASSWORD_INPUT", f"export OS_REGION_NAME={env['OS_REGION_NAME']}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_chi_up_and_down_with_a_v3oidcpassword_openrc(cli, monkeypatch, tmp_path):
    fake = cli.fake
    # Only the resource API and the password in the environment; the rest comes from the file.
    env = {k: v for k, v in fake.oidc_env.items()
           if not k.startswith("OS_") or k == "OS_PASSWORD"}
    point_chi_at(fake, monkeypatch, env=env)
    openrc = _openrc(fake, tmp_path / "CHI-251234-openrc.sh")
    up = cli.up("uc", "serve_oidc", "--openrc", str(openrc))
    assert up.exit_code == 0, up.output
    flow = [(r.method, r.path, r.status) for r in fake.requests if r.service in ("oauth", "identity")]
    paths = [p for _, p, _ in flow]
    assert any(p.endswith("/.well-known/openid-configuration") for p in paths)
    assert ("POST", "/auth/realms/chameleon/protocol/openid-connect/token", 200) in flow
    assert ("POST", "/v3/OS-FEDERATION/identity_providers/chameleon/protocols/openid/auth", 201) in flow
    assert not [f for f in flow if f[2] >= 400], flow
    assert cli.ping(cli.inventory("serve_oidc")).returncode == 0
    down = cli.down("--name", "serve_oidc", "--openrc", str(openrc))
    assert down.exit_code == 0, down.output
    assert not fake.leaked()
    assert fake.oidc_tokens.issued()  # there were tokens to leak
    assert_no_secrets(fake, cli)


def test_wrong_oidc_password_is_refused_without_echoing_it(cli, monkeypatch):
    fake = cli.fake
    env = {**fake.oidc_env, "OS_PASSWORD": "not-the-password-9f3k"}
    point_chi_at(fake, monkeypatch, env=env)
    up = cli.up("uc", "serve_oidc_bad")
    assert up.exit_code != 0
    assert "not-the-password-9f3k" not in up.output and "Traceback" not in up.output
    assert ("POST", "/auth/realms/chameleon/protocol/openid-connect/token", 401) in \
        [(r.method, r.path, r.status) for r in fake.requests]
    assert not fake.leaked()
    assert_no_secrets(fake, cli)
