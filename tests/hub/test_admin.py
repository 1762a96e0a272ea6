"""Operators see every published image in the admin and can delete one, never forge one."""

from tests.hub.conftest import pushed


def test_operators_see_and_delete_images_but_cannot_add_them(alice, operator):
    image = pushed(alice)
    admin = operator.api
    listing = admin.get("/admin/hub/image/")
    assert listing.status_code == 200 and b"tiny" in listing.content
    page = admin.get(f"/admin/hub/image/{image['id']}/change/")
    assert page.status_code == 200 and b"kernel" in page.content
    assert admin.get("/admin/hub/image/add/").status_code == 403
    assert admin.get("/admin/hub/blob/add/").status_code == 403
    deleted = admin.post(f"/admin/hub/image/{image['id']}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert alice.api.get(f"/api/v1/images/{image['id']}").status_code == 404
