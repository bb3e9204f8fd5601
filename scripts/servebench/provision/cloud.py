"""Pointing python-chi at one site with our credentials, and turning its failures into ours.

python-chi keeps its settings in module globals. ``CHI_RESOURCE_API_URL`` (where ``sites.json``
lives) is read once, at import; so every command resets the context and sets that URL again
from the environment, which also lets one process (the tests) talk to several endpoints.
``use_site`` prints to stdout and, when ``sites.json`` cannot be fetched, only prints and
returns; so we fetch the site list ourselves first (``list_sites`` raises) and silence the
chatter. Every HTTP request gets a timeout (keystoneauth has none by default), so a hung
endpoint becomes an error instead of a frozen command.
"""

from __future__ import annotations

import contextlib
import io
import os

from servebench.errors import ConfigError, ProvisionError, ServebenchError

from .credentials import Credentials
from .sites import Site
from .state import Identity

PUBLIC_RESOURCE_API_URL = "https://api.chameleoncloud.org"
# Settings an openrc may carry that the chosen site decides instead.
_SITE_DECIDES = {"auth_url", "region_name"}


def short(exc: BaseException, limit: int = 300) -> str:
    """One line from an exception from python-chi or an OpenStack client."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# What to check when Keystone rejects credentials, by the auth method they used.
_REJECTED_HINTS = {
    "v3password": "check OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME: the password is the "
                  "one of your Chameleon login",
    "v3oidcpassword": "check OS_USERNAME and OS_PASSWORD: your Chameleon (Keycloak) login",
    "v3token": "OS_TOKEN expired or belongs to another site: get a new one",
}
_APP_CRED_HINT = "application credentials work only at the site that issued them"


def failure(what: str, exc: Exception, hint: str | None = None,
            auth_type: str | None = None) -> ServebenchError:
    """The error to raise when ``what`` failed with ``exc`` (``auth_type``: the credentials'
    method, for the hint when they are rejected)."""
    if isinstance(exc, ServebenchError):
        return exc
    from keystoneauth1 import exceptions as ksa

    # python-chi re-raises some failures as its own ResourceError (retry_create): the client's
    # exception is then the context of the one we caught.
    chain, cause = [], exc
    while cause is not None and len(chain) < 5:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(isinstance(e, ksa.Unauthorized) for e in chain):
        return ConfigError(f"{what}: credentials rejected ({short(exc)})",
                           hint=_REJECTED_HINTS.get(auth_type or "", _APP_CRED_HINT))
    if any(isinstance(e, (ksa.ConnectTimeout, ksa.ConnectFailure)) for e in chain):
        return ProvisionError(f"{what}: no answer from the testbed ({short(exc)})",
                              hint=hint or "check the site's status page, then run the command again")
    return ProvisionError(f"{what}: {short(exc)}", hint=hint)


def connect(site: Site, creds: Credentials, http_timeout: float) -> Identity:
    """Select the site, apply credentials, authenticate; return who and where we are."""
    import chi.context as ctx
    from oslo_config.cfg import NoSuchOptError

    ctx.RESOURCE_API_URL = os.environ.get("CHI_RESOURCE_API_URL") or PUBLIC_RESOURCE_API_URL
    ctx.reset()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            sites = ctx.list_sites()
            if site.region not in sites:
                raise ProvisionError(
                    f"{site.region} is not in the site list at {ctx.RESOURCE_API_URL}/sites.json")
            ctx.use_site(site.region)
    except ServebenchError:
        raise
    except Exception as exc:
        raise ProvisionError(
            f"cannot read Chameleon's site list at {ctx.RESOURCE_API_URL}/sites.json: {short(exc)}",
            hint="check your network, or CHI_RESOURCE_API_URL") from None
    for key, value in creds.settings.items():
        if key in _SITE_DECIDES:
            continue
        try:
            ctx.set(key, value)
        except NoSuchOptError:
            pass  # openrc lines python-chi has no use for (OS_IDENTITY_API_VERSION, ...)
    ctx.set("timeout", http_timeout)
    auth_url = ctx.get("auth_url")
    try:
        project_id = ctx.session().get_project_id()
    except Exception as exc:
        raise failure(f"authenticating at {auth_url}", exc, auth_type=creds.auth_type) from None
    if not project_id:
        raise ConfigError(f"authenticating at {auth_url}: the token is not scoped to a project",
                          hint="set OS_PROJECT_NAME or pass --project")
    return Identity(site=site.key, region=site.region, auth_url=auth_url,
                    project_id=project_id, project_name=creds.project_name)
