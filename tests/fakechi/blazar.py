"""Blazar (reservation service) routes python-blazarclient calls: leases and their reservations,
and the host list ``chi.hardware.get_nodes`` joins with the reference API."""

from __future__ import annotations

from .http import ApiError, Call, Reply, Service
from .state import Lease, State, lease_dates

BLAZAR = Service("reservation", "/reservation")
V1 = "/v1"


def _date(state: State, epoch: float) -> str:
    return state.to_datetime(epoch).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _created(state: State, epoch: float) -> str:
    return state.to_datetime(epoch).strftime("%Y-%m-%d %H:%M:%S")


def lease_json(state: State, lease: Lease) -> dict:
    res_status = {"PENDING": "pending", "ACTIVE": "active", "TERMINATED": "deleted",
                  "ERROR": "error"}[lease.status]
    return {
        "id": lease.id, "name": lease.name, "status": lease.status, "degraded": False,
        "user_id": lease.user_id, "project_id": lease.project_id, "trust_id": lease.id[::-1],
        "start_date": _date(state, lease.start), "end_date": _date(state, lease.end),
        "created_at": _created(state, lease.created), "updated_at": None,
        "reservations": [{
            "id": r.id, "lease_id": lease.id, "resource_id": r.id[::-1],
            "resource_type": r.resource_type, "status": res_status, "min": r.min, "max": r.max,
            "resource_properties": r.resource_properties,
            "hypervisor_properties": r.hypervisor_properties, "before_end": "default",
            "on_start": "default", "missing_resources": False, "resources_changed": False,
            "created_at": _created(state, r.created), "updated_at": None,
        } for r in lease.reservations],
        "events": [
            {"id": f"{lease.id}-{kind}", "lease_id": lease.id, "event_type": kind,
             "time": _date(state, at), "status": "DONE" if state.now() >= at else "UNDONE"}
            for kind, at in (("start_lease", lease.start), ("end_lease", lease.end))
        ],
    }


def _lease(call: Call) -> Lease:
    state: State = call.fake.state
    return state.one(state.leases, call.params["lease_id"], call.site, call.project_id, "Lease")


@BLAZAR.route("GET", V1 + "/leases")
def list_leases(call: Call) -> Reply:
    state: State = call.fake.state
    with state.lock:
        leases = [state.observe_lease(le, poll=False) for le in state.mine(state.leases, call.site, call.project_id)]
        return Reply(200, {"leases": [lease_json(state, le) for le in leases]})


@BLAZAR.route("POST", V1 + "/leases")
def create_lease(call: Call) -> Reply:
    state: State = call.fake.state
    body = call.body or {}
    name = body.get("name")
    if not name:
        raise ApiError(400, "Lease name is required", "MissingParameter")
    if not body.get("reservations"):
        raise ApiError(400, "Missing parameter reservations", "MissingParameter")
    start, end = lease_dates(str(body.get("start_date") or "now"), str(body.get("end_date") or ""),
                             state.now())
    lease = state.create_lease(call.site, call.project_id, call.token["user_id"], name, start, end,
                               body["reservations"], call.fates)
    return Reply(201, {"lease": lease_json(state, lease)})


@BLAZAR.route("GET", V1 + r"/leases/(?P<lease_id>[^/]+)")
def show_lease(call: Call) -> Reply:
    state: State = call.fake.state
    lease = _lease(call)
    if call.fates:
        lease.fate = call.fates[-1]
    return Reply(200, {"lease": lease_json(state, state.observe_lease(lease, poll=True))})


@BLAZAR.route("PUT", V1 + r"/leases/(?P<lease_id>[^/]+)")
def update_lease(call: Call) -> Reply:
    state: State = call.fake.state
    lease = state.update_lease(_lease(call), call.body or {})
    return Reply(200, {"lease": lease_json(state, state.observe_lease(lease, poll=False))})


@BLAZAR.route("DELETE", V1 + r"/leases/(?P<lease_id>[^/]+)")
def delete_lease(call: Call) -> Reply:
    call.fake.state.delete_lease(_lease(call))
    return Reply(204)


@BLAZAR.route("GET", V1 + "/os-hosts")
def list_hosts(call: Call) -> Reply:
    spec = call.fake.state.site(call.site).spec
    hosts = [{"id": r.id, "hypervisor_hostname": r.uid, "reservable": True,
              "node_name": r.name, **r.properties}
             for r in spec.reservables] if spec.reservable_type == "physical:host" else []
    return Reply(200, {"hosts": hosts})


@BLAZAR.route("GET", "", authenticated=False)
def versions(call: Call) -> Reply:
    base = call.fake.site_url(call.site) + BLAZAR.prefix
    return Reply(300, {"versions": [{"id": "v1.0", "status": "CURRENT",
                                     "links": [{"rel": "self", "href": f"{base}/v1/"}]}]})
