# Identity and order columns compare by code point in the database, as in Python (config/fields.py).

import config.fields
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0004_event_partition'),
    ]

    operations = [
        config.fields.AlterFieldCollation(
            model_name='event',
            name='event_id',
            field=config.fields.BinaryCharField(help_text="The client's idempotency key.", max_length=255, unique=True),
        ),
        config.fields.AlterFieldCollation(
            model_name='segmenteventmapping',
            name='event_name',
            field=config.fields.BinaryCharField(help_text='As sent, e.g. "Demo Requested".', max_length=200, unique=True),
        ),
        config.fields.AlterFieldCollation(
            model_name='segmentidentity',
            name='value',
            field=config.fields.BinaryCharField(max_length=255),
        ),
    ]
