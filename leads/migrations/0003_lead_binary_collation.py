# Identity and order columns compare by code point in the database, as in Python (config/fields.py).

import config.fields
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('leads', '0002_operator_groups'),
    ]

    operations = [
        config.fields.AlterFieldCollation(
            model_name='lead',
            name='email',
            field=config.fields.BinaryEmailField(help_text='Stored lower-cased.', max_length=254, unique=True),
        ),
        config.fields.AlterFieldCollation(
            model_name='lead',
            name='last_processed_event_id',
            field=config.fields.BinaryCharField(blank=True, default='', max_length=255),
        ),
    ]
