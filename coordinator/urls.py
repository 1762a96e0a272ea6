from django.urls import path

from coordinator import views

urlpatterns = [
    path("coordinator/key", views.CoordinatorKeyView.as_view(), name="coordinator-key"),
]
