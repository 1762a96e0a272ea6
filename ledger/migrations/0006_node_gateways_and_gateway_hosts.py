"""Operators mark nodes as gateways (domain, public addresses, any backend); gateway hosts are
reserved per user, unique across the grid."""

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import ledger.models


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0005_node_drain_and_farmer_audit"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="GatewayHost",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "host",
                    models.CharField(
                        max_length=253,
                        unique=True,
                        validators=[
                            django.core.validators.RegexValidator(
                                "^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z][a-z0-9-]{0,62}$",
                                "a lowercase DNS name such as gw1.example.net "
                                "(letters, digits, '-', dots)",
                            )
                        ],
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("name", "<name>.<gateway domain>"),
                            ("fqdn", "A domain the user points at the gateway"),
                        ],
                        max_length=8,
                    ),
                ),
                ("created", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["host"],
            },
        ),
        migrations.AddField(
            model_name="node",
            name="gateway_addresses",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="The gateway's public IP addresses, e.g. "
                '["203.0.113.7", "2001:db8::7"]: where users point the domains they forward '
                "through it.",
                validators=[ledger.models.validate_ip_list],
            ),
        ),
        migrations.AddField(
            model_name="node",
            name="gateway_any_backend",
            field=models.BooleanField(
                default=False,
                help_text="Let users forward to any overlay address, not only their own VMs'.",
            ),
        ),
        migrations.AddField(
            model_name="node",
            name="gateway_domain",
            field=models.CharField(
                blank=True,
                help_text="Set by an operator to make the node a gateway serving "
                "<name>.<this domain> (its DNS must have a wildcard record for it pointing at "
                "the public addresses). Empty: not a gateway.",
                max_length=253,
                validators=[
                    django.core.validators.RegexValidator(
                        "^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z][a-z0-9-]{0,62}$",
                        "a lowercase DNS name such as gw1.example.net (letters, digits, '-', dots)",
                    )
                ],
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
                    ("gateway_host", "Gateway host reserved or released"),
                ],
                db_index=True,
                max_length=32,
            ),
        ),
        migrations.AddConstraint(
            model_name="node",
            constraint=models.UniqueConstraint(
                condition=models.Q(("gateway_domain", ""), _negated=True),
                fields=("gateway_domain",),
                name="one_gateway_per_domain",
            ),
        ),
        migrations.AddField(
            model_name="gatewayhost",
            name="node",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="gateway_hosts",
                to="ledger.node",
            ),
        ),
        migrations.AddField(
            model_name="gatewayhost",
            name="owner",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="gateway_hosts",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
