from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("storage_hooks", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="storedfile",
            name="remote_write_started",
            field=models.BooleanField(
                default=False,
                help_text="An attempt began writing the file to the remote, so a file found "
                "there under its name may be that attempt's unfinished copy (and may be "
                "replaced).",
            ),
        ),
    ]
