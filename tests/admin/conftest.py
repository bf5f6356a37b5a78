"""Helpers shared by the admin tests: policies made through the services, form data
collected from a rendered admin page (so inline management forms are always right)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from retained.models import Policy
from retained.policies import create_policy

ARN = "arn:aws:iot:us-east-1:123456789012"

DEVICES_POLICY = f"""{{
  "Version": "2012-10-17",
  "Statement": [
    {{"Sid": "PublishToDevices", "Effect": "Allow", "Action": "iot:Publish",
      "Resource": "{ARN}:topic/devices/*"}},
    {{"Sid": "NoSecrets", "Effect": "Deny", "Action": "iot:Publish",
      "Resource": "{ARN}:topic/devices/secret"}}
  ]
}}"""


def document(*actions: str, resource: str = f"{ARN}:topic/*") -> str:
    listed = ", ".join(f'"{action}"' for action in actions)
    return (
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
        f'"Action": [{listed}], "Resource": "{resource}"}}]}}'
    )


@pytest.fixture
def devices_policy(db: None) -> Policy:
    return create_policy("devices", DEVICES_POLICY, description="devices may publish")


@pytest.fixture
def staff_user(db: None) -> User:
    return User.objects.create_user("staff", password="pw", is_staff=True)


def page_form_data(client: Client, url: str) -> dict[str, Any]:
    """The POST data the admin change page would send as rendered: the main form's and
    every inline formset's current values, management forms included."""
    response = client.get(url)
    assert response.status_code == 200
    data: dict[str, Any] = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        forms.append(formset.management_form)
        forms.extend(formset.forms)
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else value
    return data
