"""The farm's secret boot link (finding 10, docs/security.md).

Every existing farm gets its own random link nonce (a callable default on AddField would give
them all the same one), so its link works at once; its boot enrollment token is left as it is
and keeps approving the media already written until the owner rotates the link.
"""

import secrets

from django.db import migrations, models

import ledger.models


def give_each_farm_a_link(apps, schema_editor) -> None:
    Farm = apps.get_model("ledger", "Farm")
    for farm in Farm.objects.filter(boot_link_nonce__isnull=True).only("pk"):
        Farm.objects.filter(pk=farm.pk).update(boot_link_nonce=secrets.token_hex(16))


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0002_boot_images_and_releases"),
    ]

    operations = [
        migrations.AddField(
            model_name="farm",
            name="boot_link_nonce",
            field=models.CharField(editable=False, max_length=32, null=True),
        ),
        migrations.RunPython(give_each_farm_a_link, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="farm",
            name="boot_link_nonce",
            field=models.CharField(
                default=ledger.models.new_link_nonce,
                editable=False,
                help_text="Random part of the farm's secret boot link (ledger/boot_links.py); "
                "replaced when the owner rotates the link.",
                max_length=32,
            ),
        ),
        migrations.AddField(
            model_name="enrollmenttoken",
            name="revoked_at",
            field=models.DateTimeField(
                blank=True, help_text="Set when the farm's boot link was rotated.", null=True
            ),
        ),
        migrations.AlterField(
            model_name="farm",
            name="boot_enroll",
            field=models.BooleanField(
                default=True,
                help_text="Bake the farm's boot enrollment token into the boot images its owner "
                "downloads (signed in, or through the farm's secret boot link), so nodes booted "
                "from them are approved at once. Anonymous downloads never carry it.",
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
                ],
                db_index=True,
                max_length=32,
            ),
        ),
    ]
