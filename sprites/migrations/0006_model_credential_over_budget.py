# Issue 15: remember when the proxy said a key's budget is spent (the status API shows it).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sprites', '0005_llm_reconciliation_cause'),
    ]

    operations = [
        migrations.AddField(
            model_name='modelcredential',
            name='over_budget_since',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
