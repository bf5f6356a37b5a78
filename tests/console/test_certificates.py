"""Security > Certificates (console) and the Certificate admin: staff gating, CSRF, create
(keys offered once, no-store), register from a CSR, status changes, delete, policies,
escaping."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.contrib.auth.models import User
from django.test import Client

from console.views.certificates import certificate_arn
from retained import certificates, pki
from retained.models import Certificate, CertificateStatus, Policy
from retained.policies import attach_policy, create_policy
from tests.console.conftest import XSS, client_for, make_user, policy_document

pytestmark = pytest.mark.django_db

LIST = "/certificates/"
CREATE = "/certificates/create/"
REGISTER = "/certificates/register/"
ROOT_CA = "/certificates/root-CA.crt"
MISSING_ID = "0" * 64


def detail(certificate_id: str) -> str:
    return f"/certificates/{certificate_id}/"


def action(certificate_id: str, name: str) -> str:
    return f"/certificates/{certificate_id}/{name}/"


def make_csr(common_name: str) -> str:
    """A device's CSR for its own (EC, fast to make) key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def data_links(html: str) -> dict[str, bytes]:
    """download file name -> the bytes its data: link carries."""
    links = re.findall(
        r'<a class="button" download="([^"]+)" href="data:application/x-pem-file;base64,([^"]+)"',
        html,
    )
    return {name: base64.b64decode(encoded) for name, encoded in links}


def texts(response: Any) -> str:
    return response.content.decode()


def status_of(certificate_id: str) -> str:
    return str(Certificate.objects.get(pk=certificate_id).status)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def test_authority() -> pki.Authority:
    """One CA for the session, in memory: nothing is written under the data directory."""
    return pki.create_authority(common_name="console test CA", now=pki.utcnow())


@pytest.fixture(autouse=True)
def local_ca(monkeypatch: pytest.MonkeyPatch, test_authority: pki.Authority) -> None:
    monkeypatch.setattr(certificates, "_authority", test_authority)


@pytest.fixture
def staff(db: None) -> User:
    """Staff without being a superuser (and without any policy)."""
    return User.objects.create_user("operator", password="pw-operator", is_staff=True)


@pytest.fixture
def client(staff: User) -> Client:
    return client_for(staff)


@pytest.fixture
def certificate(db: None) -> Certificate:
    return certificates.register_certificate_from_csr(
        make_csr("sensor-1"), thing_name="sensor-1", created_by="operator"
    )


@pytest.fixture
def policy(db: None) -> Policy:
    return create_policy("devices", policy_document(("iot:*", "*")))


# --- gating -----------------------------------------------------------------------------------

GET_PAGES = [
    LIST,
    REGISTER,
    ROOT_CA,
    "{id}",
    "{id}certificate.pem.crt",
    "{id}revoke/",
    "{id}delete/",
]
POST_ACTIONS = [
    CREATE,
    REGISTER,
    "{id}activate/",
    "{id}deactivate/",
    "{id}revoke/",
    "{id}delete/",
    "{id}policies/attach/",
    "{id}policies/detach/",
]


def fill(url: str, certificate: Certificate) -> str:
    return url.replace("{id}", detail(certificate.certificate_id))


@pytest.mark.parametrize("url", GET_PAGES)
def test_anonymous_get_goes_to_login(certificate: Certificate, url: str) -> None:
    response = Client().get(fill(url, certificate))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url", POST_ACTIONS)
def test_anonymous_post_goes_to_login_and_changes_nothing(
    certificate: Certificate, url: str
) -> None:
    response = Client().post(fill(url, certificate), {"csr": make_csr("x")})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert list(Certificate.objects.values_list("certificate_id", "status")) == [
        (certificate.certificate_id, CertificateStatus.ACTIVE)
    ]


@pytest.mark.parametrize("url", GET_PAGES)
def test_non_staff_get_is_forbidden(certificate: Certificate, url: str) -> None:
    member = make_user("member", ("iot:*", "*"))  # policies do not make a user staff
    response = client_for(member).get(fill(url, certificate))
    assert response.status_code == 403
    assert "Certificate management needs a staff account" in texts(response)
    assert certificate.certificate_id not in texts(response)


@pytest.mark.parametrize("url", POST_ACTIONS)
def test_non_staff_post_is_forbidden_and_changes_nothing(
    certificate: Certificate, policy: Policy, url: str
) -> None:
    member = make_user("member")
    response = client_for(member).post(
        fill(url, certificate), {"csr": make_csr("x"), "policy": policy.name}
    )
    assert response.status_code == 403
    assert "staff account" in texts(response)
    assert Certificate.objects.count() == 1
    assert status_of(certificate.certificate_id) == CertificateStatus.ACTIVE
    assert certificates.attached_policy_names(certificate.certificate_id) == []


def test_superuser_is_staff(root: User) -> None:
    assert client_for(root).get(LIST).status_code == 200


def test_nav_links_to_certificates(client: Client) -> None:
    html = texts(client.get(LIST))
    assert '<a href="/certificates/" aria-current="page">Certificates</a>' in html


# --- CSRF -------------------------------------------------------------------------------------


def test_create_without_csrf_token_is_refused(staff: User) -> None:
    response = client_for(staff, enforce_csrf_checks=True).post(CREATE, {"thing_name": "t1"})
    assert response.status_code == 403
    assert not Certificate.objects.exists()


def test_register_without_csrf_token_is_refused(staff: User) -> None:
    strict = client_for(staff, enforce_csrf_checks=True)
    response = strict.post(REGISTER, {"csr": make_csr("sensor-9")})
    assert response.status_code == 403
    assert not Certificate.objects.exists()


@pytest.mark.parametrize("name", ["deactivate", "revoke"])
def test_status_change_without_csrf_token_is_refused(
    staff: User, certificate: Certificate, name: str
) -> None:
    strict = client_for(staff, enforce_csrf_checks=True)
    response = strict.post(action(certificate.certificate_id, name))
    assert response.status_code == 403
    assert status_of(certificate.certificate_id) == CertificateStatus.ACTIVE


def test_attach_without_csrf_token_is_refused(
    staff: User, certificate: Certificate, policy: Policy
) -> None:
    strict = client_for(staff, enforce_csrf_checks=True)
    url = action(certificate.certificate_id, "policies/attach")
    assert strict.post(url, {"policy": policy.name}).status_code == 403
    assert certificates.attached_policy_names(certificate.certificate_id) == []


def test_forms_carry_the_csrf_token(staff: User, certificate: Certificate) -> None:
    """The pages' own forms pass the CSRF check (the token is in each of them)."""
    strict = client_for(staff, enforce_csrf_checks=True)
    html = texts(strict.get(detail(certificate.certificate_id)))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert token is not None
    response = strict.post(
        action(certificate.certificate_id, "deactivate"),
        {"csrfmiddlewaretoken": token.group(1)},
    )
    assert response.status_code == 302
    assert status_of(certificate.certificate_id) == CertificateStatus.INACTIVE


# --- list -------------------------------------------------------------------------------------


def test_empty_list_offers_create_and_register(client: Client) -> None:
    response = client.get(LIST)
    html = texts(response)
    assert response.status_code == 200
    assert "No certificates yet" in html
    assert 'action="/certificates/create/"' in html
    assert ">Create certificate</button>" in html
    assert 'href="/certificates/register/"' in html
    assert 'name="request_token"' in html


def test_list_shows_each_certificate(client: Client, certificate: Certificate) -> None:
    certificates.set_certificate_status(certificate.certificate_id, CertificateStatus.INACTIVE)
    html = texts(client.get(LIST))
    full = certificate.certificate_id
    assert f'href="/certificates/{full}/" title="{full}"><code>{full[:10]}…</code>' in html
    assert f'data-copy-target="#full-id-{full}"' in html
    assert '<span class="badge status status-inactive">Inactive</span>' in html
    assert "<code>sensor-1</code>" in html  # CN and thing name
    assert "1 device certificate." in html
    assert "in 9 years" in html  # expires (ten years, less the backdating)


# --- create -----------------------------------------------------------------------------------


def test_create_offers_the_three_files_once(client: Client, test_authority: pki.Authority) -> None:
    response = client.post(CREATE, {"thing_name": "thermostat-1", "request_token": "t-1"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = texts(response)
    assert "cannot be retrieved later" in html
    stored = Certificate.objects.get()
    assert stored.thing_name == "thermostat-1"
    assert stored.subject_common_name == "thermostat-1"
    assert stored.created_by == "operator"
    assert stored.status == CertificateStatus.ACTIVE
    assert stored.certificate_id in html
    prefix = stored.certificate_id[:10]
    files = data_links(html)
    assert sorted(files) == sorted(
        [f"{prefix}-certificate.pem.crt", f"{prefix}-private.pem.key", "root-CA.crt"]
    )
    assert files[f"{prefix}-certificate.pem.crt"].decode() == stored.certificate_pem
    assert files["root-CA.crt"].decode() == test_authority.certificate_pem
    key = serialization.load_pem_private_key(files[f"{prefix}-private.pem.key"], password=None)
    device = x509.load_pem_x509_certificate(stored.certificate_pem.encode())
    assert key.public_key().public_numbers() == device.public_key().public_numbers()  # type: ignore[union-attr]
    assert pki.is_issued_by(device, test_authority)

    # The key is nowhere later: not on the detail page, not in the list, not in the database.
    key_base64 = re.search(r'download="[^"]+-private\.pem\.key" href="data:[^,]+,([^"]+)"', html)
    assert key_base64 is not None
    key_pem = files[f"{prefix}-private.pem.key"].decode()
    for url in (detail(stored.certificate_id), LIST):
        later = texts(client.get(url))
        assert "PRIVATE KEY" not in later
        assert key_base64.group(1) not in later
        assert key_pem.splitlines()[1] not in later
    row = Certificate.objects.filter(pk=stored.pk).values().get()
    assert not any("PRIVATE KEY" in str(value) for value in row.values())


def test_create_without_thing_name(client: Client) -> None:
    response = client.post(CREATE)
    assert response.status_code == 200
    stored = Certificate.objects.get()
    assert stored.thing_name == ""
    assert stored.subject_common_name == certificates.DEFAULT_COMMON_NAME


def test_resending_the_create_form_shows_no_key_and_creates_nothing(client: Client) -> None:
    """A reload of the result page sends the same form again: it leads to the certificate
    that form made, without the key."""
    first = client.post(CREATE, {"request_token": "same-form"})
    assert first.status_code == 200
    again = client.post(CREATE, {"request_token": "same-form"}, follow=True)
    stored = Certificate.objects.get()
    assert again.redirect_chain == [(detail(stored.certificate_id), 302)]
    html = texts(again)
    assert "already created" in html
    assert "PRIVATE KEY" not in html
    assert "data:application/x-pem-file" not in html
    # Another form (another token) makes another certificate.
    assert client.post(CREATE, {"request_token": "other-form"}).status_code == 200
    assert Certificate.objects.count() == 2


def test_create_with_a_bad_thing_name_creates_nothing(client: Client) -> None:
    response = client.post(CREATE, {"thing_name": "no spaces allowed"})
    assert response.status_code == 400
    assert "a thing name may contain only letters, digits" in texts(response)
    assert not Certificate.objects.exists()


def test_create_needs_post(client: Client) -> None:
    assert client.get(CREATE).status_code == 405
    assert not Certificate.objects.exists()


# --- register from a CSR ----------------------------------------------------------------------


def test_register_form(client: Client) -> None:
    response = client.get(REGISTER)
    assert response.status_code == 200
    assert 'name="csr"' in texts(response)
    assert 'name="thing_name"' in texts(response)


def test_register_from_csr(client: Client) -> None:
    response = client.post(REGISTER, {"csr": make_csr("sensor-7"), "thing_name": "sensor-7"})
    stored = Certificate.objects.get()
    assert response.status_code == 302
    assert response["Location"] == detail(stored.certificate_id)
    assert stored.subject_common_name == "sensor-7"
    assert stored.thing_name == "sensor-7"
    assert stored.created_by == "operator"
    page = texts(client.get(response["Location"]))
    assert "Registered: the CA signed the request." in page


@pytest.mark.parametrize(
    ("csr", "message"),
    [
        ("not a csr", "not a PEM certificate signing request"),
        (
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
            "not a PEM certificate signing request",
        ),
    ],
)
def test_register_a_bad_csr_shows_why_and_creates_nothing(
    client: Client, csr: str, message: str
) -> None:
    response = client.post(REGISTER, {"csr": csr, "thing_name": "sensor-7"})
    assert response.status_code == 400
    html = texts(response)
    assert message in html
    assert "sensor-7" in html  # the form comes back as it was sent
    assert not Certificate.objects.exists()


def test_register_an_empty_form(client: Client) -> None:
    response = client.post(REGISTER, {"csr": ""})
    assert response.status_code == 400
    assert "This field is required." in texts(response)
    assert not Certificate.objects.exists()


def test_the_same_csr_registered_twice_makes_two_certificates(client: Client) -> None:
    csr = make_csr("sensor-7")
    assert client.post(REGISTER, {"csr": csr}).status_code == 302
    # The CA signs it again (a new serial), so it is another certificate: both are kept.
    assert client.post(REGISTER, {"csr": csr}).status_code == 302
    assert Certificate.objects.count() == 2


def test_a_script_in_the_common_name_renders_inert(client: Client) -> None:
    response = client.post(REGISTER, {"csr": make_csr(XSS)})
    assert response.status_code == 302
    stored = Certificate.objects.get()
    assert stored.subject_common_name == XSS
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for url in (
        LIST,
        detail(stored.certificate_id),
        action(stored.certificate_id, "revoke"),
    ):
        html = texts(client.get(url))
        assert XSS not in html
        assert escaped in html
    certificates.set_certificate_status(stored.certificate_id, CertificateStatus.INACTIVE)
    html = texts(client.get(action(stored.certificate_id, "delete")))
    assert XSS not in html
    assert escaped in html


def test_a_script_in_a_created_common_name_renders_inert(client: Client) -> None:
    certificates.create_certificate(common_name=XSS)
    html = texts(client.get(LIST))
    assert XSS not in html
    assert "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>" in html


# --- detail -----------------------------------------------------------------------------------


def test_detail_shows_the_certificate(
    client: Client, certificate: Certificate, settings: Any
) -> None:
    settings.RETAINED_REGION = "eu-west-1"
    settings.RETAINED_ACCOUNT_ID = "210987654321"
    response = client.get(detail(certificate.certificate_id))
    assert response.status_code == 200
    html = texts(response)
    full = certificate.certificate_id
    assert f'<code id="certificate-id">{full}</code>' in html
    arn = f"arn:aws:iot:eu-west-1:210987654321:cert/{full}"
    assert certificate_arn(full) == arn
    assert f'<code id="certificate-arn">{arn}</code>' in html
    assert '<span class="badge status status-active">Active</span>' in html
    assert "<code>sensor-1</code>" in html
    assert "console test CA" in html  # the issuer
    assert "by <code>operator</code>" in html
    assert certificate.not_after.strftime("%Y-%m-%d %H:%M:%S") in html
    assert certificate.certificate_pem.splitlines()[1] in html
    assert f'href="/certificates/{full}/certificate.pem.crt"' in html
    assert ">Deactivate</button>" in html
    assert f'href="/certificates/{full}/revoke/"' in html
    assert "/delete/" not in html  # an ACTIVE certificate cannot be deleted
    assert "There are no policies yet" in html


@pytest.mark.parametrize("url", [detail(MISSING_ID), "/certificates/not-an-id/"])
def test_unknown_certificate_is_404(client: Client, url: str) -> None:
    assert client.get(url).status_code == 404


def test_download_the_certificate(client: Client, certificate: Certificate) -> None:
    response = client.get(f"{detail(certificate.certificate_id)}certificate.pem.crt")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-pem-file"
    filename = f"{certificate.certificate_id[:10]}-certificate.pem.crt"
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert response.content.decode() == certificate.certificate_pem


def test_download_the_root_ca(client: Client, test_authority: pki.Authority) -> None:
    response = client.get(ROOT_CA)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="root-CA.crt"'
    assert response.content.decode() == test_authority.certificate_pem


# --- status -----------------------------------------------------------------------------------


def test_deactivate_then_activate(client: Client, certificate: Certificate) -> None:
    cid = certificate.certificate_id
    response = client.post(action(cid, "deactivate"), follow=True)
    assert response.redirect_chain == [(detail(cid), 302)]
    assert status_of(cid) == CertificateStatus.INACTIVE
    html = texts(response)
    assert "Deactivated: connections using this certificate were closed" in html
    assert ">Activate</button>" in html
    assert ">Deactivate</button>" not in html
    assert f'href="/certificates/{cid}/delete/"' in html  # inactive: may be deleted

    response = client.post(action(cid, "activate"), follow=True)
    assert status_of(cid) == CertificateStatus.ACTIVE
    assert "Activated: devices can connect" in texts(response)


def test_status_actions_need_post(client: Client, certificate: Certificate) -> None:
    for name in ("activate", "deactivate"):
        assert client.get(action(certificate.certificate_id, name)).status_code == 405
    assert status_of(certificate.certificate_id) == CertificateStatus.ACTIVE


def test_revoke_asks_first_and_is_final(client: Client, certificate: Certificate) -> None:
    cid = certificate.certificate_id
    confirm = client.get(action(cid, "revoke"))
    assert confirm.status_code == 200
    assert "Revoking is final." in texts(confirm)
    assert status_of(cid) == CertificateStatus.ACTIVE  # asking changed nothing

    response = client.post(action(cid, "revoke"), follow=True)
    assert status_of(cid) == CertificateStatus.REVOKED
    html = texts(response)
    assert "Revoked: connections using this certificate were closed. This is final." in html
    assert '<span class="badge status status-revoked">Revoked</span>' in html
    for gone in (">Activate</button>", ">Deactivate</button>", "/revoke/"):
        assert gone not in html
    assert f'href="/certificates/{cid}/delete/"' in html

    for name in ("activate", "deactivate"):
        response = client.post(action(cid, name), follow=True)
        assert status_of(cid) == CertificateStatus.REVOKED
        assert "Nothing changed: a revoked certificate cannot be activated" in texts(response)
    assert "already revoked" in texts(client.get(action(cid, "revoke")))


def test_status_change_of_a_missing_certificate_is_404(client: Client) -> None:
    assert client.post(action(MISSING_ID, "deactivate")).status_code == 404


# --- delete -----------------------------------------------------------------------------------


def test_an_active_certificate_is_not_deleted(client: Client, certificate: Certificate) -> None:
    cid = certificate.certificate_id
    page = texts(client.get(action(cid, "delete")))
    assert "Deactivate or revoke it before deleting it." in page
    assert ">Delete</button>" not in page
    response = client.post(action(cid, "delete"), follow=True)
    assert response.redirect_chain == [(detail(cid), 302)]
    assert "Not deleted: deactivate or revoke the certificate before deleting it." in texts(
        response
    )
    assert Certificate.objects.filter(pk=cid).exists()


@pytest.mark.parametrize("status", [CertificateStatus.INACTIVE, CertificateStatus.REVOKED])
def test_delete_an_inactive_certificate_and_its_attachments(
    client: Client, certificate: Certificate, policy: Policy, status: str
) -> None:
    cid = certificate.certificate_id
    attach_policy(policy, certificate_id=cid)
    certificates.set_certificate_status(cid, status)
    page = texts(client.get(action(cid, "delete")))
    assert ">Delete</button>" in page
    assert "Its 1 policy is detached" in page
    response = client.post(action(cid, "delete"), follow=True)
    assert response.redirect_chain == [(LIST, 302)]
    assert f"Deleted certificate {cid[:10]}" in texts(response)
    assert not Certificate.objects.filter(pk=cid).exists()
    assert certificates.attached_policy_names(cid) == []
    assert Policy.objects.filter(pk=policy.pk).exists()


# --- policies ---------------------------------------------------------------------------------


def test_attach_and_detach_a_policy(
    client: Client, certificate: Certificate, policy: Policy
) -> None:
    cid = certificate.certificate_id
    create_policy("other", policy_document(("iot:Connect", "*")))
    page = texts(client.get(detail(cid)))
    assert '<option value="devices">devices</option>' in page
    assert '<option value="other">other</option>' in page

    response = client.post(action(cid, "policies/attach"), {"policy": "devices"}, follow=True)
    assert response.redirect_chain == [(detail(cid), 302)]
    assert certificates.attached_policy_names(cid) == ["devices"]
    html = texts(response)
    assert "Attached policy devices." in html
    assert f'href="/admin/retained/policy/{policy.pk}/change/"><code>devices</code></a>' in html
    assert '<input type="hidden" name="policy" value="devices">' in html
    assert '<option value="devices">' not in html  # attached: no longer offered
    assert '<option value="other">other</option>' in html

    response = client.post(action(cid, "policies/detach"), {"policy": "devices"}, follow=True)
    assert certificates.attached_policy_names(cid) == []
    assert "Detached policy devices." in texts(response)

    response = client.post(action(cid, "policies/detach"), {"policy": "devices"}, follow=True)
    assert "Policy devices was not attached." in texts(response)


def test_attaching_an_unknown_policy_changes_nothing(
    client: Client, certificate: Certificate
) -> None:
    cid = certificate.certificate_id
    response = client.post(action(cid, "policies/attach"), {"policy": "nope"}, follow=True)
    assert "Nothing attached: choose an existing policy." in texts(response)
    assert certificates.attached_policy_names(cid) == []
    response = client.post(action(cid, "policies/detach"), {"policy": "nope"}, follow=True)
    assert "Nothing detached: no such policy." in texts(response)


def test_a_policy_error_is_shown_and_nothing_changes(
    client: Client, certificate: Certificate, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console.views import certificates as views
    from retained.policies import PolicyError

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PolicyError("the policy store is read-only")

    monkeypatch.setattr(views, "attach_policy", refuse)
    url = action(certificate.certificate_id, "policies/attach")
    response = client.post(url, {"policy": policy.name}, follow=True)
    assert "Nothing attached: the policy store is read-only." in texts(response)
    assert certificates.attached_policy_names(certificate.certificate_id) == []


def test_a_policy_name_with_markup_renders_inert(client: Client, certificate: Certificate) -> None:
    create_policy(XSS, policy_document(("iot:*", "*")))
    cid = certificate.certificate_id
    response = client.post(action(cid, "policies/attach"), {"policy": XSS}, follow=True)
    html = texts(response)
    assert certificates.attached_policy_names(cid) == [XSS]
    assert XSS not in html
    assert "Attached policy &lt;script&gt;alert(1)&lt;/script&gt;." in html


# --- the admin --------------------------------------------------------------------------------

ADMIN = "/admin/retained/certificate/"


@pytest.fixture
def admin_client(root: User) -> Client:
    return client_for(root)


def test_admin_list_and_search(admin_client: Client, certificate: Certificate) -> None:
    certificates.create_certificate(common_name="other-device")
    response = admin_client.get(ADMIN, {"q": "sensor-1"})
    assert response.status_code == 200
    html = texts(response)
    assert certificate.certificate_id in html
    assert "other-device" not in html
    assert "1 result" in html
    filtered = texts(admin_client.get(ADMIN, {"status__exact": "INACTIVE"}))
    assert certificate.certificate_id not in filtered


def test_admin_change_page_is_read_only(
    admin_client: Client, certificate: Certificate, policy: Policy
) -> None:
    attach_policy(policy, certificate_id=certificate.certificate_id)
    response = admin_client.get(f"{ADMIN}{certificate.certificate_id}/change/")
    assert response.status_code == 200
    html = texts(response)
    assert f'href="/admin/retained/policy/{policy.pk}/change/">devices</a>' in html
    assert f'href="/certificates/{certificate.certificate_id}/"' in html
    assert "BEGIN CERTIFICATE" in html
    assert 'name="_save"' not in html
    assert 'name="status"' not in html
    assert "/delete/" not in html


def test_admin_add_leads_to_the_console(admin_client: Client) -> None:
    response = admin_client.get(f"{ADMIN}add/")
    assert response.status_code == 302
    assert response["Location"] == LIST
    assert not Certificate.objects.exists()


def test_admin_cannot_delete_around_the_service(
    admin_client: Client, certificate: Certificate
) -> None:
    response = admin_client.post(
        ADMIN, {"action": "delete_selected", "_selected_action": [certificate.certificate_id]}
    )
    assert Certificate.objects.filter(pk=certificate.certificate_id).exists()
    assert response.status_code in (200, 302)


def test_admin_actions_change_the_status(admin_client: Client, certificate: Certificate) -> None:
    cid = certificate.certificate_id

    def run(name: str) -> str:
        response = admin_client.post(
            ADMIN, {"action": name, "_selected_action": [cid]}, follow=True
        )
        assert response.status_code == 200
        return texts(response)

    assert "Deactivated 1 certificate." in run("deactivate")
    assert status_of(cid) == CertificateStatus.INACTIVE
    assert "Activated 1 certificate." in run("activate")
    assert status_of(cid) == CertificateStatus.ACTIVE
    assert "Revoked 1 certificate." in run("revoke")
    assert status_of(cid) == CertificateStatus.REVOKED
    html = run("activate")
    assert "a revoked certificate cannot be activated or deactivated" in html
    assert status_of(cid) == CertificateStatus.REVOKED


def test_admin_is_for_staff_only(certificate: Certificate) -> None:
    member = make_user("member")
    response = client_for(member).get(ADMIN)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
