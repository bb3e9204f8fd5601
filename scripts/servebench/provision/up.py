"""chi-up's work: lease, server or container, floating IP, SSH, inventory; and its rollback.

Each step first looks for what an earlier run made under the same name and reuses it (saying
so), so running chi-up again creates nothing new; a lease found by name is reused only if it is
ours. Each server, container or address it asks for is written to the state file before the
request and again as soon as its id exists, before any wait; the lease only once it exists, with
its id (a name clash must leave nothing a rollback could match by name). A failure or
Ctrl-C at any point rolls back what THIS run made (not what an earlier run left in place),
through the same teardown code chi-down uses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from servebench.errors import (Interrupted, ProvisionError, ServebenchError, StateError,
                               Terminated, TerminatedError)

from . import container, deployment_files, floating_ip, inventory, lease, server
from .cloud import failure
from .sites import GPU_NODE_TYPES, Site
from .ssh import SshTarget, run_command, wait_ssh
from .state import Identity, State, instance_name
from .teardown import teardown

# Seconds each wait may take unless --wait-timeout says otherwise.
DEFAULT_WAITS = {"lease": 600, "server": 1800, "container": 900, "ssh": 600, "teardown": 900}


@dataclass(frozen=True)
class Plan:
    site: Site
    name: str
    window: lease.LeaseWindow
    reservation: lease.Reservation
    image: str
    key: Path
    public_key: str
    key_name: str
    ssh_user: str
    ssh_port: int
    state_path: Path
    inventory_path: Path
    waits: dict

    @property
    def node(self) -> str:
        return instance_name(self.name)

    @property
    def node_type(self) -> str | None:
        """What the lease reserves: a node type, the edge machine type, or None for --node."""
        if self.site.is_edge:
            return self.site.machine_type
        return None if self.reservation.node_name else self.reservation.node_type or self.site.node_type

    @property
    def has_gpu(self) -> bool:
        node_type = self.reservation.node_type or self.site.node_type
        return not self.site.is_edge and node_type in GPU_NODE_TYPES

    def cost_lines(self, start: datetime, end: datetime) -> list[str]:
        """The lease's cost from the rate table (servebench.cost), for --dry-run."""
        from servebench import cost

        hours = max((end - start).total_seconds(), 0) / 3600
        node_type = self.node_type or self.site.node_type
        estimate = cost.lease_estimate(node_type, self.site.region, hours)
        assumed = f" (assuming --node {self.reservation.node_name} is one)" if self.node_type is None else ""
        lines = [f"  cost estimate: {hours:.4g} node-hours of {node_type} at {self.site.region}"
                 f"{assumed}: {cost.describe(estimate)}"]
        if estimate["su"] is not None:
            lines.append(f"  rate: {estimate['rate_su_per_node_hour']:g} SU per node-hour "
                         f"({estimate['rates_file']}), from {estimate['source']}")
        return lines

    def describe(self, identity: Identity, existing: dict | None) -> list[str]:
        """The requests chi-up would make, for --dry-run."""
        site = self.site
        lines = [f"plan for {self.name}: {identity.describe()}"]
        if existing:
            start, end = lease.lease_dates(existing)
            lines.append(f"  reuse lease {self.name} ({existing.get('status')}, "
                         f"{lease.LeaseWindow(start, end, start).describe()})")
            lines += self.cost_lines(start, end)
        else:
            body = {"name": self.name, "start_date": self.window.blazar_start,
                    "end_date": self.window.blazar_end,
                    "reservations": self.reservation.requests(self.name, self.window)}
            lines.append(f"  lease {self.name}: {self.reservation.describe()}, {self.window.describe()}")
            lines += self.cost_lines(self.window.effective_start, self.window.end)
            lines.append(f"  POST reservation /leases {_json(body)}")
        if site.is_edge:
            lines.append(f"  POST container /containers name={self.node} image={self.image} "
                         f"exposed_ports=22/tcp hints.reservation=<device reservation>")
            lines.append("  POST container /containers/<id>/execute: install openssh-server, "
                         "upload authorized key, start sshd")
        else:
            lines.append(f"  GET/POST compute /os-keypairs {self.key_name} from {self.key}.pub")
            lines.append(f"  POST compute /servers name={self.node} image={self.image} "
                         f"flavor=baremetal network={site.network} "
                         f"scheduler_hints.reservation=<node reservation>")
        lines.append(f"  POST network /floatingips on public, description "
                     f"{floating_ip.description(self.name)}; PUT it onto {self.node}'s port")
        lines.append(f"  ssh {self.ssh_user}@<floating ip>:{self.ssh_port} true, until it answers")
        lines.append(f"  write {self.inventory_path} and {self.state_path}")
        return lines


def _json(body: dict) -> str:
    import json

    return json.dumps(body, separators=(",", ":"))


class Provisioner:
    def __init__(self, plan: Plan, identity: Identity, say: Callable[[str], None]):
        self.plan = plan
        self.identity = identity
        self.say = say
        self.run_id = uuid.uuid4().hex[:12]
        self.step = "starting"
        if plan.state_path.exists():
            self.state = State.load(plan.state_path)
            self.state.check_identity(identity)
            if self.state.name != plan.name:
                raise StateError(f"{plan.state_path} is the state of {self.state.name}, not {plan.name}",
                                 hint=f"pass --name {self.state.name}, or another --state")
        else:
            self.state = State.new(plan.state_path, plan.name, identity)

    # -- helpers ---------------------------------------------------------------------------

    def _do(self, step: str, fn, *args, hint: str | None = None, **kwargs):
        """Run one request to the testbed as ``step``; its failure becomes our error."""
        self.step = step
        try:
            return fn(*args, **kwargs)
        except ServebenchError:
            raise
        except Exception as exc:  # noqa: BLE001 -- python-chi and clients raise anything
            raise failure(step, exc, hint) from None

    def _entry(self, kind: str) -> dict | None:
        found = self.state.of_kind(kind)
        return found[0] if found else None

    def made_this_run(self) -> list[dict]:
        return [e for e in self.state.resources if e.get("run") == self.run_id]

    # -- steps -----------------------------------------------------------------------------

    def run(self) -> None:
        plan = self.plan
        lease_json = self.ensure_lease()
        if lease_json.get("status") != "ACTIVE":
            # A listing may lag; the lease itself says whether it has started.
            lease_json = self._do("reading the lease", lease.get_lease, lease_json["id"])
        start, end = lease.lease_dates(lease_json)
        if self.state.data.get("node_type") != plan.node_type:
            self.state.set("node_type", plan.node_type)  # what chi-extend prices an extension by
        if lease_json.get("status") != "ACTIVE":
            now = datetime.now(timezone.utc)
            if (start - now).total_seconds() > plan.waits["lease"]:
                self.say(f"lease {plan.name} starts {start:%Y-%m-%d %H:%M} UTC: run "
                         f"`chi-up --site {plan.site.key} --name {plan.name}` again after then")
                return
            self.step = "waiting for the lease to become ACTIVE"
            self.say(f"waiting for lease {plan.name} to become ACTIVE")
            lease_json = self._do(self.step, lease.wait_active, lease_json["id"], plan.name,
                                  plan.waits["lease"], self.say)
        if plan.site.is_edge:
            instance_id = self.ensure_container(lease_json)
        else:
            instance_id = self.ensure_server(lease_json)
        fip = self.ensure_floating_ip(instance_id)
        target = SshTarget(fip.address, plan.ssh_user, plan.ssh_port, plan.key)
        if plan.site.is_edge and not run_command(target, timeout_s=5)[0]:
            # A new container, or a reused one whose pod restarted with a fresh file system.
            self._do("bootstrapping SSH in the container", container.bootstrap_ssh,
                     instance_id, plan.public_key, self.say, timeout_s=plan.waits["ssh"])
            # A rebuilt file system has new host keys: the pinned one would refuse it.
            deployment_files.known_hosts_path(plan.state_path, plan.name).unlink(missing_ok=True)
        self.step = f"waiting for SSH on {target.describe()}"
        self.say(self.step)
        wait_ssh(target, plan.waits["ssh"], self.say)
        self.write_inventory(fip, end)

    def ensure_lease(self) -> dict:
        plan, state = self.plan, self.state
        existing = self._do("looking up leases", lease.find_lease, plan.name)
        recorded = self._entry("lease")
        if existing:
            self._check_ours(existing, recorded)
            self.say(f"reusing lease {plan.name} ({existing.get('status')}); no new lease made, "
                     "and chi-down deletes it with the rest")
            if recorded and recorded.get("id") != existing["id"]:
                state.forget(recorded)
                recorded = None
            if not recorded:
                state.update(state.record("lease", plan.name, run=""), id=existing["id"])
            return existing
        if recorded:
            state.forget(recorded)  # an earlier lease of that name ended or was deleted
        requests = self._do("building the reservation", plan.reservation.requests,
                            plan.name, plan.window)
        self.say(f"creating lease {plan.name}: {plan.reservation.describe()}, {plan.window.describe()}")
        self.step = "creating the lease"
        try:
            made = lease.create_lease(plan.name, requests, plan.window)
        except Exception as exc:  # noqa: BLE001 -- python-chi and clients raise anything
            if lease.is_name_clash(exc):
                raise ProvisionError(
                    f"creating the lease: a lease named {plan.name} already exists (another "
                    "chi-up, or someone in the project, made it a moment ago)",
                    hint="run chi-up again to reuse it if it is yours, or pass another --name") from None
            raise failure(self.step, exc, "try another --start, --duration or node type") from None
        # Recorded only now, with its id: a refused create (the name taken meanwhile) leaves no
        # entry that a rollback could match, by name, to somebody else's lease.
        state.record("lease", plan.name, run=self.run_id, id=made["id"])
        return made

    def _check_ours(self, existing: dict, recorded: dict | None) -> None:
        """Reuse (and later delete) a lease found by name only if it is ours: the state's lease,
        or one made in this project by the user these credentials belong to."""
        if recorded and recorded.get("id") == existing.get("id"):
            return
        name = self.plan.name
        if existing.get("project_id") not in (None, self.identity.project_id):
            raise ProvisionError(f"lease {name} belongs to another project",
                                 hint="pass another --name")
        me = self._do("reading who these credentials are", lease.current_user_id)
        owner = existing.get("user_id")
        if owner and me and owner != me:
            raise ProvisionError(f"lease {name} exists but another user of the project made it",
                                 hint="pass another --name; chi-up never reuses or deletes it")

    def ensure_server(self, lease_json: dict) -> str:
        plan = self.plan
        reservation = lease.reservation_id(lease_json, "physical:host")
        self._do("creating or updating the keypair", server.ensure_keypair,
                 plan.key_name, plan.public_key)
        server_id = self._adopt("server", server.find_server)
        if not server_id:
            entry = self.state.record("server", plan.node, run=self.run_id)
            self.say(f"creating server {plan.node} ({plan.image}) on the lease")
            self._do("creating the server", server.launch, plan.node, reservation, plan.image,
                     plan.key_name, plan.site.network)
            server_id = self._do("looking up the new server", server.find_server, plan.node)
            if not server_id:
                raise ProvisionError(f"server {plan.node} was accepted but does not exist")
            self.state.update(entry, id=server_id)
        self.step = f"waiting for server {plan.node} to become ACTIVE"
        self.say(self.step)
        self._do(self.step, server.wait_active, server_id, plan.node, plan.waits["server"], self.say)
        return server_id

    def ensure_container(self, lease_json: dict) -> str:
        plan = self.plan
        reservation = lease.reservation_id(lease_json, "device")
        container_id = self._adopt("container", container.find_container)
        if not container_id:
            entry = self.state.record("container", plan.node, run=self.run_id)
            self.say(f"creating container {plan.node} ({plan.image}) on the device")
            container_id = self._do("creating the container", container.launch, plan.node,
                                    reservation, plan.image)
            self.state.update(entry, id=container_id)
        self.step = f"waiting for container {plan.node} to run"
        self.say(self.step)
        self._do(self.step, container.wait_running, container_id, plan.node,
                 plan.waits["container"], self.say)
        return container_id

    def _adopt(self, kind: str, find) -> str | None:
        """The id of our existing server/container of this deployment's name, if any."""
        found = self._do(f"looking up {kind}s", find, self.plan.node)
        recorded = self._entry(kind)
        if recorded and recorded.get("id") != found:
            self.state.forget(recorded)
            recorded = None
        if found:
            self.say(f"reusing {kind} {self.plan.node}; no new {kind} made")
            if not recorded:
                self.state.update(self.state.record(kind, self.plan.node, run=""), id=found)
        return found

    def ensure_floating_ip(self, instance_id: str) -> floating_ip.FloatingIp:
        plan, state = self.plan, self.state
        ours = self._do("listing floating IPs", floating_ip.list_ours, plan.name)
        recorded = self._entry("floating_ip")
        if recorded and not any(f["id"] == recorded.get("id") for f in ours):
            state.forget(recorded)
            recorded = None
        if ours:
            live = next((f for f in ours if recorded and f["id"] == recorded["id"]), ours[0])
            fip = floating_ip.FloatingIp(live["id"], live["floating_ip_address"])
            self.say(f"reusing floating IP {fip.address}; no new address allocated")
            if not recorded:
                state.update(state.record("floating_ip", fip.address, run="", address=fip.address),
                             id=fip.id)
            attached = live.get("port_id")
        else:
            entry = state.record("floating_ip", "(allocating)", run=self.run_id, address=None)
            fip = self._do("allocating a floating IP", floating_ip.allocate, plan.name)
            state.update(entry, id=fip.id, name=fip.address, address=fip.address)
            self.say(f"allocated floating IP {fip.address}")
            attached = None
        if not attached:
            associate = container.associate if plan.site.is_edge else server.associate
            self._do(f"attaching floating IP {fip.address} to {plan.node}", associate,
                     instance_id, fip.address)
        return fip

    def write_inventory(self, fip: floating_ip.FloatingIp, lease_end: datetime) -> None:
        plan = self.plan
        known_hosts = deployment_files.known_hosts_path(plan.state_path, plan.name)
        host = inventory.Host(
            name=plan.node, address=fip.address, port=plan.ssh_port, user=plan.ssh_user,
            key=plan.key, site=plan.site.region, lease_end=lease_end.isoformat(timespec="minutes"),
            kind="container" if plan.site.is_edge else "server", has_gpu=plan.has_gpu,
            node_type=plan.node_type)
        path = inventory.write(plan.inventory_path, plan.name, [host], known_hosts)
        self.state.set("inventory", str(path))
        self.state.set("known_hosts", str(known_hosts))
        self.state.set("ssh", {"host": fip.address, "user": plan.ssh_user, "port": plan.ssh_port,
                               "key": str(plan.key)})
        self.say(f"ready: {plan.node} at {plan.ssh_user}@{fip.address}, lease ends "
                 f"{lease_end:%Y-%m-%d %H:%M} UTC; inventory {path}")

    # -- rollback --------------------------------------------------------------------------

    def fail(self, cause: BaseException, keep: bool = False) -> ServebenchError:
        """Roll back this run's creations (unless ``keep``); return the error to exit with."""
        interrupted = isinstance(cause, (KeyboardInterrupt, Interrupted))
        what = (f"interrupted while {self.step}" if interrupted
                else (cause.format() if isinstance(cause, ServebenchError) else f"{self.step}: {cause}"))
        if keep:
            kept = ", ".join(f"{e['kind'].replace('_', ' ')} {e.get('name')}"
                             for e in self.state.resources) or "nothing"
            return self._error(cause, f"{what}; kept (--keep): {kept}; "
                                      f"chi-down --name {self.plan.name} removes it")
        mine = self.made_this_run()
        if not mine:
            left = self._left_text()
            return self._error(cause, f"{what}; nothing was made, so nothing to roll back{left}")
        self.say(f"rolling back what this run made ({len(mine)} resource(s)); "
                 "Ctrl-C again abandons it, then chi-down removes the rest")
        try:
            result = teardown(mine, self.plan.name, self.plan.waits["teardown"], self.say,
                              state=self.state)
        except KeyboardInterrupt:
            return Interrupted(f"{what}; rollback interrupted{self._left_text()}")
        except Exception as exc:  # noqa: BLE001
            return self._error(cause, f"{what}; rollback failed ({failure('rollback', exc)}){self._left_text()}")
        self._cleanup_files()
        if result.left:
            return self._error(cause, f"{what}; rolled back, but left: {'; '.join(result.left)} "
                                      f"(run chi-down --name {self.plan.name})")
        return self._error(cause, f"{what}; rolled back, nothing of this run is left{self._left_text()}")

    def _left_text(self) -> str:
        kept = [f"{e['kind'].replace('_', ' ')} {e.get('name')}" for e in self.state.resources]
        if not kept:
            return ""
        return f"; still there from before: {', '.join(kept)} (chi-down removes them)"

    def _cleanup_files(self) -> None:
        if not self.state.resources:
            self.state.delete()

    @staticmethod
    def _error(cause: BaseException, message: str) -> ServebenchError:
        if isinstance(cause, (Terminated, TerminatedError)):
            return TerminatedError(message)
        if isinstance(cause, (KeyboardInterrupt, Interrupted)):
            return Interrupted(message)
        code_from = cause if isinstance(cause, ServebenchError) else ProvisionError("")
        error = type(code_from)(message)
        return error
