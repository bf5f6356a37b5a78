from django.urls import re_path

from retained.api import views

# Topics arrive percent-encoded and may contain "/" (as %2F); the views re-read them from the
# raw path so they are decoded exactly once.
urlpatterns = [
    re_path(r"^retainedMessage$", views.list_retained_messages, name="api-list-retained"),
    re_path(
        r"^retainedMessage/(?P<topic>.*)$", views.get_retained_message, name="api-get-retained"
    ),
    re_path(r"^topics/(?P<topic>.*)$", views.publish, name="api-publish"),
]
