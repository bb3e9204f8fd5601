"""Chameleon credentials from the standard ``OS_*`` environment (an openrc or an application
credential file), checked before anything talks to the testbed.

python-chi reads ``OS_*`` variables itself when its context is reset (clouds.yaml is not read);
this module only decides which authentication method applies, names exactly what is missing,
and turns values read from an ``--openrc`` file into settings for ``chi.set``. It also knows
the secret values so that every line we print can be scrubbed of them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from servebench.errors import ConfigError, UsageError

# Variables whose values must never be printed, logged or written anywhere.
SECRET_VARS = (
    "OS_PASSWORD",
    "OS_APPLICATION_CREDENTIAL_SECRET",
    "OS_TOKEN",
    "OS_ACCESS_TOKEN",
    "OS_CLIENT_SECRET",
)

# What each keystoneauth method needs. A tuple inside the list means "any one of these".
_PROJECT = ("OS_PROJECT_NAME", "OS_PROJECT_ID")
REQUIRED: dict[str, list] = {
    "v3applicationcredential": [("OS_APPLICATION_CREDENTIAL_ID", "OS_APPLICATION_CREDENTIAL_NAME"),
                                "OS_APPLICATION_CREDENTIAL_SECRET"],
    "v3password": ["OS_USERNAME", "OS_PASSWORD", _PROJECT],
    "v3token": ["OS_TOKEN", _PROJECT],
    # Chameleon's own openrc files authenticate through its Keycloak with this method.
    # (OS_CLIENT_SECRET is optional: a public client sends its id in the form instead.)
    "v3oidcpassword": ["OS_USERNAME", "OS_PASSWORD", "OS_CLIENT_ID",
                       ("OS_DISCOVERY_ENDPOINT", "OS_ACCESS_TOKEN_ENDPOINT"),
                       "OS_IDENTITY_PROVIDER", "OS_PROTOCOL", _PROJECT],
}
_ALIASES = {"password": "v3password", "token": "v3token",
            "applicationcredential": "v3applicationcredential",
            "v3applicationcredentials": "v3applicationcredential"}
# An openrc is a few dozen lines; a bigger file is something else (and is not read whole).
_MAX_OPENRC_BYTES = 64 * 1024
# Redacting very short values would mangle ordinary words ("none" is a common client secret).
_MIN_REDACT_LEN = 6


@dataclass
class Credentials:
    auth_type: str
    # chi.set(key, value) pairs that the environment alone does not give python-chi.
    settings: dict[str, str] = field(default_factory=dict)
    project_name: str | None = None
    secrets: tuple[str, ...] = ()

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text


def read_openrc(path: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The ``OS_*`` assignments of an openrc file, without running it.

    ``$VAR`` references are resolved from ``env``; an assignment that stays unresolved (the
    password prompt of Chameleon's openrc, ``OS_PASSWORD=$OS_PASSWORD_INPUT``) is skipped, so
    a value already in the environment is kept.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_OPENRC_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read openrc file {path}: {exc.strerror}") from None
    not_openrc = "pass the openrc or application-credential file Chameleon gave you"
    if len(data) > _MAX_OPENRC_BYTES:
        raise UsageError(f"openrc file {path} is over {_MAX_OPENRC_BYTES // 1024} KiB: "
                         "not an openrc file", hint=not_openrc)
    offset = data.find(b"\0")  # valid UTF-8, yet no text file holds one
    if offset < 0:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            offset = exc.start
    if offset >= 0:
        raise UsageError(f"openrc file {path} is not a text file (byte {offset} is not text)",
                         hint=not_openrc)
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"\s*(?:export\s+)?(OS_[A-Z0-9_]+)=(.*)$", line)
        if not match:
            continue
        name, raw = match.groups()
        try:
            parts = shlex.split(raw, comments=True)
        except ValueError:
            continue
        value = parts[0] if parts else ""
        refs = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", value)
        if any(ref not in env for ref in refs):
            continue
        for ref in refs:
            value = re.sub(r"\$\{?" + ref + r"\}?", env[ref], value)
        values[name] = value
    return values


def infer_auth_type(env: Mapping[str, str]) -> str:
    declared = env.get("OS_AUTH_TYPE") or env.get("OS_AUTH_METHOD")
    if declared:
        auth_type = _ALIASES.get(declared.lower(), declared.lower())
        if auth_type not in REQUIRED:
            raise ConfigError(
                f"OS_AUTH_TYPE={declared} is not supported: use one of {', '.join(REQUIRED)}")
        return auth_type
    if env.get("OS_APPLICATION_CREDENTIAL_ID") or env.get("OS_APPLICATION_CREDENTIAL_NAME"):
        return "v3applicationcredential"
    if env.get("OS_PASSWORD"):
        return "v3password"
    if env.get("OS_TOKEN"):
        return "v3token"
    raise ConfigError(
        "no Chameleon credentials: set OS_APPLICATION_CREDENTIAL_ID and "
        "OS_APPLICATION_CREDENTIAL_SECRET, or OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME",
        hint="source your openrc or application-credential file, or pass --openrc PATH",
    )


def missing_variables(auth_type: str, env: Mapping[str, str]) -> list[str]:
    missing = []
    for need in REQUIRED[auth_type]:
        names = need if isinstance(need, tuple) else (need,)
        if not any(env.get(n) for n in names):
            missing.append(" or ".join(names))
    return missing


def resolve(env: Mapping[str, str], openrc: Path | None = None,
            project: str | None = None) -> Credentials:
    """Check the credentials in ``env`` (plus ``openrc``) and ``--project``; never prints values."""
    from_file = read_openrc(openrc, env) if openrc else {}
    merged = {**env, **from_file}
    if project:
        merged["OS_PROJECT_NAME"] = project
    auth_type = infer_auth_type(merged)
    missing = missing_variables(auth_type, merged)
    if missing:
        raise ConfigError(
            f"credentials incomplete for {auth_type}: missing {', '.join(missing)}",
            hint="source your openrc or application-credential file, or pass --openrc PATH",
        )
    settings = {name[3:].lower(): value for name, value in from_file.items()}
    settings["auth_type"] = auth_type
    if project:
        settings["project_name"] = project
    secrets = tuple(sorted({merged[v] for v in SECRET_VARS
                            if len(merged.get(v) or "") >= _MIN_REDACT_LEN}, key=len, reverse=True))
    return Credentials(auth_type=auth_type, settings=settings,
                       project_name=merged.get("OS_PROJECT_NAME"), secrets=secrets)
