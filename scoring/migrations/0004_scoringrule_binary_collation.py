# Identity and order columns compare by code point in the database, as in Python (config/fields.py).

import config.fields
import scoring.models
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('scoring', '0003_scorechange_event_optional'),
    ]

    operations = [
        config.fields.AlterFieldCollation(
            model_name='scoringrule',
            name='event_type',
            field=config.fields.BinaryCharField(max_length=64, unique=True, validators=[scoring.models.validate_event_type]),
        ),
    ]
