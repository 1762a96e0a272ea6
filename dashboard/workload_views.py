"""The workloads pages: what the user runs across nodes, one workload's page, and its console.

The rows are the coordinator's copy of the nodes' inventory reports (coordinator/workloads.py
reads them, owner-scoped; another user's id is a 404 like a missing one).

A VM's console is not in the inventory: it changes with every line the guest prints, and the
inventory is resent whenever it changes, so carrying it there would stream every console to the
coordinator all the time. It is read on request instead, the only way a node answers its owner:
the page's "Refresh console" button (workload.js) signs a generated `vm_info("<name>")` script
with the user's browser key, deploys it to the workload's node and shows the `console` of its
result. The server never holds a key that could sign for the user, so it cannot fetch the
console by itself — nor can anyone who gets into the server. Delete works the same way, with a
generated delete script the user confirms and signs.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from coordinator import workloads as service


@login_required
def workloads(request: HttpRequest) -> HttpResponse:
    """Every VM, volume and database of the user, with node, state, address and capacity."""
    context = {"rows": service.workload_rows(request.user)}
    return render(request, "dashboard/workloads.html", context)


@login_required
def workload(request: HttpRequest, workload_id: int) -> HttpResponse:
    """One workload, with the signed actions on it: delete, and a VM's console."""
    found = get_object_or_404(service.owned_workloads(request.user), pk=workload_id)
    return render(request, "dashboard/workload.html", {"view": service.view_of(found)})
