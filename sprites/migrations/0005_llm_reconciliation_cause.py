# Issue 15: ledger rows that reconcile model spend with the proxy (cause model_proxy).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sprites', '0004_model_credentials'),
    ]

    operations = [
        migrations.AlterField(
            model_name='usagerecord',
            name='cause',
            field=models.CharField(choices=[('heartbeat', 'Heartbeat'), ('user_start', 'User start'), ('staff', 'Staff action'), ('provisioning', 'Provisioning'), ('pool_setup', 'Pool set-up'), ('storage', 'Storage accrual'), ('model_proxy', 'Model proxy reconciliation')], max_length=20),
        ),
    ]
