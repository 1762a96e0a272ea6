from django.urls import path

from dashboard import directory_views, farm_views, views, workload_views

app_name = "dashboard"
urlpatterns = [
    path("", views.home, name="home"),
    path("sign-up", views.sign_up, name="sign-up"),
    path("sign-in", views.SignInView.as_view(), name="sign-in"),
    path("sign-out", views.SignOutView.as_view(), name="sign-out"),
    path("account/password", views.PasswordView.as_view(), name="password"),
    path("keys", views.keys, name="keys"),
    path("keys/<int:key_id>/revoke", views.revoke_key, name="revoke-key"),
    path("deploy", views.deploy, name="deploy"),
    path("deployments", views.deployments, name="deployments"),
    path("deployments/<int:deployment_id>", views.deployment, name="deployment"),
    path("workloads", workload_views.workloads, name="workloads"),
    path("workloads/<int:workload_id>", workload_views.workload, name="workload"),
    path("account/tokens", views.tokens, name="tokens"),
    path("account/tokens/<int:token_id>/revoke", views.revoke_token, name="revoke-token"),
    path("nodes", directory_views.nodes, name="nodes"),
    path("nodes/<int:node_id>", directory_views.node, name="node"),
    path("farms", farm_views.farm_list, name="farms"),
    path("farms/<int:farm_id>", farm_views.farm, name="farm"),
    path("farms/<int:farm_id>/tokens", farm_views.create_token, name="farm-token"),
    path(
        "farms/<int:farm_id>/tokens/<int:token_id>/revoke",
        farm_views.revoke_token,
        name="farm-token-revoke",
    ),
    path(
        "farms/<int:farm_id>/nodes/<int:node_id>/<slug:action>",
        farm_views.node_action,
        name="farm-node",
    ),
    path("farms/<int:farm_id>/release", farm_views.set_release, name="farm-release"),
    path("farms/<int:farm_id>/boot", farm_views.boot, name="farm-boot"),
    path("farms/<int:farm_id>/boot/rotate", farm_views.rotate_boot_link, name="farm-boot-rotate"),
]
