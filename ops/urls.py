from django.urls import path

from ops import views

app_name = "ops"
urlpatterns = [
    path("operator/", views.overview, name="overview"),
    path("operator/nodes/<int:node_id>/logs", views.node_logs, name="node-logs"),
    path("metrics", views.metrics_view, name="metrics"),
]
