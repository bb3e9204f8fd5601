"""Glance v2 (image) routes glanceclient calls: the image schema (its models validate against
it), image lists filtered by name, one image by id."""

from __future__ import annotations

from .http import ApiError, Call, Reply, Service
from .state import Image, State

GLANCE = Service("image", "/image")
V2 = "/v2"
CC_IMAGES_REPO = "https://github.com/ChameleonCloud/cc-images"


def _image_json(state: State, image: Image) -> dict:
    stamp = state.to_datetime(image.created).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"id": image.id, "name": image.name, "status": "active", "visibility": "public",
            "container_format": "bare", "disk_format": "qcow2", "min_disk": 0, "min_ram": 0,
            "size": 4 * 1024 ** 3, "checksum": image.id.replace("-", "")[:32], "protected": False,
            "os_hidden": False, "owner": "admin", "tags": [], "created_at": stamp,
            "updated_at": stamp, "build-repo": CC_IMAGES_REPO, "self": f"/v2/images/{image.id}",
            "file": f"/v2/images/{image.id}/file", "schema": "/v2/schemas/image"}


@GLANCE.route("GET", "", authenticated=False)
def versions(call: Call) -> Reply:
    base = call.fake.site_url(call.site) + GLANCE.prefix
    return Reply(300, {"versions": [{"id": "v2.16", "status": "CURRENT",
                                     "links": [{"rel": "self", "href": f"{base}/v2/"}]}]})


@GLANCE.route("GET", V2 + "/schemas/image")
def image_schema(call: Call) -> Reply:
    # Every field we return is declared without a type, so glanceclient's model accepts it.
    sample = _image_json(call.fake.state, Image("x", "x", 0.0))
    return Reply(200, {"name": "image", "properties": {k: {} for k in sample},
                       "additionalProperties": {"type": "string"},
                       "links": [{"rel": "self", "href": "{self}"}]})


@GLANCE.route("GET", V2 + "/images")
def list_images(call: Call) -> Reply:
    state: State = call.fake.state
    images = list(state.site(call.site).images.values())
    if "name" in call.query:
        images = [i for i in images if i.name == call.query["name"]]
    return Reply(200, {"images": [_image_json(state, i) for i in images],
                       "schema": "/v2/schemas/images", "first": "/v2/images"})


@GLANCE.route("GET", V2 + r"/images/(?P<image_id>[^/]+)")
def show_image(call: Call) -> Reply:
    state: State = call.fake.state
    image = state.site(call.site).images.get(call.params["image_id"])
    if image is None:
        raise ApiError(404, f"No image found with ID {call.params['image_id']}", "Not Found")
    return Reply(200, _image_json(state, image))
