# Issue 15: each sprite's own model credentials (encrypted), in their own table.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import sprites.fields


class Migration(migrations.Migration):

    dependencies = [
        ('sprites', '0003_metric_counters'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ModelCredential',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('backend', models.CharField(choices=[('litellm', 'LiteLLM virtual key'), ('byo', 'Bring your own key')], max_length=10)),
                ('base_url', models.CharField(max_length=500)),
                ('api_key', sprites.fields.EncryptedTextField(blank=True)),
                ('key_id', models.CharField(blank=True, max_length=200)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('rotated_at', models.DateTimeField(blank=True, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('sprite', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='model_credentials', to='sprites.usersprite')),
                ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'db_table': 'sprite_model_credentials',
                'constraints': [models.UniqueConstraint(condition=models.Q(('revoked_at__isnull', True)), fields=('sprite',), name='one_active_model_credential_per_sprite')],
            },
        ),
    ]
