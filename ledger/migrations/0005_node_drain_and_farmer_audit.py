"""Farmers drain nodes (Node.drained_at) and their own actions are audited."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0004_uptime_hours"),
    ]

    operations = [
        migrations.AddField(
            model_name="node",
            name="drained_at",
            field=models.DateTimeField(
                blank=True,
                help_text="Set while the farmer drains the node: it gets no new deployments, "
                "its waiting farm jobs move to other nodes, its workloads stay (ledger/farms.py).",
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="auditentry",
            name="kind",
            field=models.CharField(
                choices=[
                    ("node_registered", "Node registered"),
                    ("node_transition", "Node state change"),
                    ("token_created", "Enrollment token created"),
                    ("token_used", "Enrollment token used"),
                    ("security", "Security event"),
                    ("key_changed", "User key change"),
                    ("boot_download", "Approving boot media downloaded"),
                    ("boot_link_rotated", "Boot link rotated"),
                    ("farm_created", "Farm created"),
                    ("token_revoked", "Enrollment token revoked"),
                    ("node_drained", "Node drained"),
                    ("node_undrained", "Node undrained"),
                    ("release_set", "Farm agent release set"),
                ],
                db_index=True,
                max_length=32,
            ),
        ),
        migrations.AlterField(
            model_name="enrollmenttoken",
            name="revoked_at",
            field=models.DateTimeField(
                blank=True,
                help_text="Set when its farmer revokes it, or, for a boot token, when the farm's "
                "boot link is rotated.",
                null=True,
            ),
        ),
    ]
