"""chi-up, chi-down, chi-status, chi-extend: provision what the study needs on Chameleon, keep
its lease long enough, and remove it.

Every failure is one line, ``error: <what happened> (<what to do>)``, with the exit code of its
class (servebench.errors.ExitCode: 2 usage/config, 3 state, 4 provisioning, 5 teardown, 130
interrupted, 143 SIGTERM during chi-up); no tracebacks. Every printed line is scrubbed of the
secrets in the environment.

python-chi is imported only by the modules that talk to the testbed (cloud, lease, teardown,
status, ...), and there inside the functions: importing it takes about 2 s (measured on the
2-core development machine) and reads configuration from the environment, which --help and
usage errors need not pay for.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import logging
import math
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path

import click

from servebench.command import OneLineCommand, sigterm_raises
from servebench.errors import ProvisionError, ServebenchError, StateError, UsageError

from . import credentials, deployment_files, extension, lease, state as state_mod
from .cloud import connect, failure
from .inventory import default_path as inventory_default, ssh_common_args as inventory_ssh_args
from .sites import SITES, get_site
from .ssh import load_key
from .status import report
from .teardown import discover, require_clean, teardown
from .up import DEFAULT_WAITS, Plan, Provisioner
from .waiting import poll_interval


class _Console:
    """Where commands print: stdout for progress, stderr for the error line, secrets scrubbed."""

    def __init__(self) -> None:
        self.creds: credentials.Credentials | None = None

    def redact(self, text: str) -> str:
        return self.creds.redact(text) if self.creds else text

    def say(self, line: str) -> None:
        click.echo(self.redact(line))

    def error(self, line: str) -> None:
        click.echo(f"error: {self.redact(line)}", err=True)


class _ChiCommand(OneLineCommand):
    """The error line scrubbed of the secrets the command read (the console in ctx.obj)."""

    def error_line(self, ctx: click.Context | None, text: str) -> None:
        console = ctx.obj if ctx is not None and isinstance(ctx.obj, _Console) else _Console()
        console.error(text)


@contextlib.contextmanager
def _quiet_libraries():
    """python-chi's dependencies log to stderr through Python's last-resort handler (stevedore
    errors for keystoneauth plugins nobody uses, neutronclient's deprecation notice) and warn
    about python-chi's own deprecated calls. Not the user's business: our lines say what
    happens. Restored afterwards, for callers in the same process (tests)."""
    loggers = [logging.getLogger(name) for name in
               ("stevedore", "neutronclient", "keystoneauth", "openstack", "chi", "paramiko")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _guarded(body):
    """Run a command body with a console (kept in ctx.obj, for the scrubbed error line)."""

    @functools.wraps(body)
    def wrapper(**kwargs):
        console = click.get_current_context().obj = _Console()
        with _quiet_libraries():
            body(console, **kwargs)

    return wrapper


# -- shared options --------------------------------------------------------------------------

class _Seconds(click.FloatRange):
    """A FloatRange that refuses NaN: every comparison with NaN is false, so Click's own bounds
    let it through, and a wait whose deadline is NaN never ends."""

    name = "seconds"

    def convert(self, value, param, ctx):
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return seconds


def _credential_options(fn):
    fn = click.option("--openrc", type=click.Path(path_type=Path, dir_okay=False),
                      help="Read OS_* settings from this openrc / application-credential file "
                           "(not executed; values already in the environment fill its $VARs).")(fn)
    fn = click.option("--project", help="Chameleon project name; default OS_PROJECT_NAME.")(fn)
    fn = click.option("--http-timeout", type=_Seconds(1, 600), default=60, show_default=True,
                      help="Seconds any one request to the testbed may take.")(fn)
    fn = click.option("--wait-timeout", type=_Seconds(1, 86400),
                      help="Seconds each wait may take (lease start, boot, SSH, deletion); by "
                           "default 10 min for the lease, 30 for bare metal, 15 for a container, "
                           "10 for SSH, 15 for deletion.")(fn)
    fn = click.option("--state", "state_path", type=click.Path(path_type=Path, dir_okay=False),
                      help="State file; default .servebench/state-<name>.json.")(fn)
    return fn


def _waits(wait_timeout: float | None) -> dict:
    return {k: wait_timeout or v for k, v in DEFAULT_WAITS.items()}


def _connect(console: _Console, site_key: str, openrc: Path | None, project: str | None,
             http_timeout: float):
    console.creds = credentials.resolve(os.environ, openrc, project)
    poll_interval()  # a bad SERVEBENCH_POLL_INTERVAL is a usage error before anything starts
    return connect(get_site(site_key), console.creds, http_timeout)


def _user() -> str:
    return lease.user_slug(os.environ.get("USER") or getpass.getuser())


def _resolve_key(key: Path | None) -> tuple[Path, Path | None]:
    public = os.environ.get("OS_KEYPAIR_PUBLIC_KEY")
    if key:
        return key, None
    if os.environ.get("OS_KEYPAIR_PRIVATE_KEY"):
        return Path(os.environ["OS_KEYPAIR_PRIVATE_KEY"]), Path(public) if public else None
    for candidate in ("~/.ssh/id_ed25519", "~/.ssh/id_rsa"):
        if Path(candidate).expanduser().exists():
            return Path(candidate), None
    raise UsageError("no SSH key found",
                     hint="pass --key PATH (with PATH.pub beside it) or set OS_KEYPAIR_PRIVATE_KEY")


def _find_state(name: str | None, state_path: Path | None) -> Path | None:
    """The state file to act on: --state, else --name's, else the only one there is."""
    if state_path:
        return state_path
    if name:
        return state_mod.default_path(lease.validate_name(name))
    found = state_mod.state_files()
    if len(found) == 1:
        return found[0]
    if not found:
        return None
    names = ", ".join(p.stem.removeprefix("state-") for p in found)
    raise UsageError(f"several deployments here ({names})", hint="pass --name NAME")


# -- chi-up ----------------------------------------------------------------------------------

@click.command(cls=_ChiCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--site", required=True, metavar="|".join(SITES),
              help="tacc: CHI@TACC compute_liqid; uc: CHI@UC compute_gigaio (both AMD EPYC 7763 + "
                   "A100); edge: CHI@Edge Raspberry Pi 5 (a container).")
@click.option("--name", help="Lease name; default serve_model_<user> (servers) or serve_edge_<user>. "
                             "An existing lease of that name is reused.")
@click.option("--start", default="now", show_default=True,
              help="now, or an ISO time (2026-11-23T14:00 is local time, ...Z is UTC).")
@click.option("--duration", help="Lease length like 3h, 90m, 2h30m; default 3h (servers), 2h (edge).")
@click.option("--start-on-hour", is_flag=True, help="Move the start up to the next full hour.")
@click.option("--end-before-hour", is_flag=True,
              help="End five minutes before the full hour, so back-to-back leases never overlap.")
@click.option("--node-type", help="Node type to reserve (servers); default the site's.")
@click.option("--node", "node_name", help="Reserve this node by name instead of by type (servers).")
@click.option("--device", help="Reserve this device by name or uuid instead of any raspberrypi5 (edge).")
@click.option("--image", help="Disk image (servers, default CC-Ubuntu24.04-CUDA) or container "
                              "image (edge, default an arm64 python image).")
@click.option("--key", type=click.Path(path_type=Path, dir_okay=False),
              help="SSH private key, PATH.pub beside it; default OS_KEYPAIR_PRIVATE_KEY, "
                   "~/.ssh/id_ed25519 or ~/.ssh/id_rsa.")
@click.option("--key-name", help="Nova keypair to create or update from the public key; "
                                 "default OS_KEYPAIR_NAME or servebench-<user>.")
@click.option("--ssh-user", help="Login on the node; default cc (servers) or root (containers).")
@click.option("--ssh-port", type=click.IntRange(1, 65535), default=22, show_default=True,
              help="SSH port on the floating IP.")
@click.option("--inventory", "inventory_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Ansible inventory to write; default inventory/chi_<name>.yml.")
@click.option("--keep", is_flag=True, help="On failure, keep what was made (for debugging) "
                                           "instead of rolling it back.")
@click.option("--dry-run", is_flag=True, help="Print the plan and the requests; create nothing.")
@_credential_options
@_guarded
def chi_up(console: _Console, site, name, start, duration, start_on_hour, end_before_hour,
           node_type, node_name, device, image, key, key_name, ssh_user, ssh_port,
           inventory_path, keep, dry_run, openrc, project, http_timeout, wait_timeout,
           state_path):
    """Reserve a node (or an edge device), boot it, attach a floating IP, wait until SSH lets us
    in, and write an Ansible inventory for `ansible-playbook bench.yml`.

    Running it again with the same name reuses what exists and creates nothing new. If a step
    fails or you press Ctrl-C, what this run made is rolled back (unless --keep).
    """
    where = get_site(site)
    if where.is_edge and (node_type or node_name):
        raise UsageError("--node-type and --node are for server sites (tacc, uc)")
    if not where.is_edge and device:
        raise UsageError("--device is for the edge site")
    if node_type and node_name:
        raise UsageError("pass --node-type or --node, not both")
    name = lease.validate_name(name or where.default_lease_name(_user()))
    window = lease.compute_window(
        lease.parse_start(start),
        lease.parse_duration(duration) if duration else where.default_duration,
        datetime.now(timezone.utc), start_on_hour, end_before_hour)
    private, public_path = _resolve_key(key)
    private, public_key = load_key(private, public_path)
    plan = Plan(
        site=where, name=name, window=window,
        reservation=lease.Reservation(where, node_type=node_type, node_name=node_name, device=device),
        image=image or where.image, key=private, public_key=public_key,
        key_name=key_name or os.environ.get("OS_KEYPAIR_NAME") or f"servebench-{_user()}",
        ssh_user=ssh_user or where.ssh_user, ssh_port=ssh_port,
        state_path=(state_path or state_mod.default_path(name)).absolute(),
        inventory_path=(inventory_path or inventory_default(name)).absolute(),
        waits=_waits(wait_timeout))
    # A path SSH cannot take is refused now, not after the node is made.
    inventory_ssh_args(deployment_files.known_hosts_path(plan.state_path, name))
    identity = _connect(console, site, openrc, project, http_timeout)
    if dry_run:
        try:
            existing = lease.find_lease(name)
        except ServebenchError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise failure("looking up leases", exc) from None
        for line in plan.describe(identity, existing):
            console.say(line)
        console.say("nothing created (--dry-run)")
        return
    with state_mod.locked(name):
        provisioner = Provisioner(plan, identity, console.say)
        with sigterm_raises():
            try:
                provisioner.run()
            except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 -- every failure rolls back
                raise provisioner.fail(exc, keep=keep) from None


# -- chi-down --------------------------------------------------------------------------------

@click.command(cls=_ChiCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--name", help="Deployment (lease) name; default the only one in .servebench/.")
@click.option("--site", metavar="|".join(SITES),
              help="Site to search when the state file is lost (with --name).")
@_credential_options
@_guarded
def chi_down(console: _Console, name, site, openrc, project, http_timeout, wait_timeout, state_path):
    """Delete everything chi-up made (containers, servers, floating IPs, then the lease), then
    list what is left to prove it is gone. Safe to run again.

    Works from the state file, or by name when the state file is lost (--name NAME --site SITE:
    the lease NAME, the server or container node-NAME, floating IPs marked servebench:NAME).
    """
    waits = _waits(wait_timeout)
    path = _find_state(name, state_path)
    if path is not None and path.exists():
        with state_mod.locked(state_mod.State.load(path).name):
            _down_from_state(console, path, site, openrc, project, http_timeout, waits)
        return
    if not name:
        raise StateError("no deployment found in .servebench/",
                         hint="pass --name NAME --site SITE to remove one by name")
    if not site:
        raise UsageError(f"no state file for {name} at {path}",
                         hint="pass --site to find its resources by name, or --state PATH")
    with state_mod.locked(name):
        _down_by_name(console, name, site, openrc, project, http_timeout, waits)


def _down_from_state(console: _Console, path: Path, site, openrc, project, http_timeout,
                     waits: dict) -> None:
    state = state_mod.State.load(path)  # again, under the lock: what the holder left
    if site and get_site(site).key != state.identity.site:
        raise UsageError(f"{path} is a deployment at {state.identity.region}, not {get_site(site).region}")
    identity = _connect(console, state.identity.site, openrc, project, http_timeout)
    state.check_identity(identity)
    console.say(f"removing {state.name} at {identity.region}")
    result = teardown(list(state.resources), state.name, waits["teardown"], console.say, state)
    if not result.left:
        recorded = state.data.get("inventory")
        deployment_files.remove(state.name, console.say, state_path=path,
                                inventory_path=Path(recorded) if recorded else None,
                                recorded_known_hosts=state.data.get("known_hosts"))
        state.delete()
    require_clean(result, state.name, identity.region, console.say)


def _down_by_name(console: _Console, name: str, site, openrc, project, http_timeout,
                  waits: dict) -> None:
    identity = _connect(console, site, openrc, project, http_timeout)
    try:
        found = discover(name)
    except Exception as exc:  # noqa: BLE001
        raise failure(f"looking for {name}'s resources", exc) from None
    console.say(f"no state file: removing what is named {name} at {identity.region} "
                f"({len(found)} found)")
    result = teardown(found, name, waits["teardown"], console.say)
    if not result.left:
        deployment_files.remove(name, console.say, inventory_path=inventory_default(name),
                                state_path=state_mod.default_path(name))
    require_clean(result, name, identity.region, console.say)


# -- chi-status ------------------------------------------------------------------------------

@click.command(cls=_ChiCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--name", help="Deployment (lease) name; default the only one in .servebench/.")
@_credential_options
@_guarded
def chi_status(console: _Console, name, openrc, project, http_timeout, wait_timeout, state_path):
    """Show the lease window and time left, each resource and its state, and whether SSH answers.
    Reads only; exits 0 when everything is up, 4 when something is missing or down."""
    path = _find_state(name, state_path)
    if path is None:
        raise StateError("no deployment found in .servebench/", hint="run chi-up first, or pass --state")
    state = state_mod.State.load(path)
    identity = _connect(console, state.identity.site, openrc, project, http_timeout)
    state.check_identity(identity)
    try:
        healthy = report(state, console.say)
    except Exception as exc:  # noqa: BLE001
        raise failure("reading the deployment's status", exc) from None
    if not healthy:
        raise ProvisionError(f"{state.name} is not fully up", hint="chi-up again repairs it")


# -- chi-extend ------------------------------------------------------------------------------

@click.command(cls=_ChiCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--name", help="Deployment (lease) name; default the only one in .servebench/.")
@click.option("--by", "by", required=True, metavar="DURATION",
              help="How much longer, like 1h, 90m or 2h30m (whole minutes).")
@_credential_options
@_guarded
def chi_extend(console: _Console, name, by, openrc, project, http_timeout, wait_timeout,
               state_path):
    """Extend the deployment's lease through Blazar's lease update, and move the inventory's
    lease_end with it. Blazar refuses when the node is reserved after the lease: then nothing
    changes (exit 4)."""
    delta = lease.parse_duration(by, option="--by")
    path = _find_state(name, state_path)
    if path is None:
        raise StateError("no deployment found in .servebench/", hint="run chi-up first, or pass --state")
    with state_mod.locked(state_mod.State.load(path).name):
        state = state_mod.State.load(path)  # again, under the lock
        identity = _connect(console, state.identity.site, openrc, project, http_timeout)
        state.check_identity(identity)
        extension.extend(state, delta, console.say)
