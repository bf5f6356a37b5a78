"""Security > Certificates: the list, "Create certificate" (keys handed out once), register
from a CSR, and a certificate's page (status, policies, delete). Staff only.

Every action is one call into retained.certificates or retained.policies, then a redirect
with a message. The private key of a created certificate exists only in the one response
that creates it: embedded as data: links, sent with Cache-Control: no-store, kept nowhere.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.forms import (
    AttachPolicyForm,
    CreateCertificateForm,
    DetachPolicyForm,
    RegisterCertificateForm,
)
from console.views.timefmt import exact_utc, relative
from retained import certificates, pki
from retained.certificates import CertificateError
from retained.models import Certificate, CertificateStatus, Policy
from retained.policies import PolicyError, attach_policy, detach_policy
from retained.policy.arns import arn

PAGE_SIZE = 50
PEM_CONTENT_TYPE = "application/x-pem-file"
ROOT_CA_FILENAME = "root-CA.crt"
# Tokens of the last "Create certificate" forms this session sent -> the certificate each made.
CREATED_SESSION_KEY = "console.certificates.created"
REMEMBERED_CREATIONS = 20

View = Callable[..., HttpResponse]


def staff_required(view: View) -> View:
    """Anonymous: to the login page; signed in without staff status: the 403 page saying so."""

    @wraps(view)
    def staff_only(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not getattr(request.user, "is_staff", False):
            return render(
                request, "console/certificates/forbidden.html", {"nav": "certificates"}, status=403
            )
        return view(request, *args, **kwargs)

    return login_required(staff_only)


# --- what the pages show ----------------------------------------------------------------------


def list_url() -> str:
    return reverse("certificate-list")


def detail_url(certificate_id: str) -> str:
    return reverse("certificate-detail", args=[certificate_id])


def certificate_filename(certificate: Certificate) -> str:
    """AWS's naming: the first 10 hex digits of the id, then what the file is."""
    return f"{certificate.short_id}-certificate.pem.crt"


def private_key_filename(certificate: Certificate) -> str:
    return f"{certificate.short_id}-private.pem.key"


def certificate_arn(certificate_id: str) -> str:
    return arn(settings.RETAINED_REGION, settings.RETAINED_ACCOUNT_ID, "cert", certificate_id)


@dataclass(frozen=True, slots=True)
class Moment:
    """A time as the console shows it: relative words, the exact UTC time on hover."""

    at: datetime
    relative: str
    exact: str

    @classmethod
    def of(cls, at: datetime, now: datetime) -> Moment:
        return cls(at, relative(at, now), exact_utc(at))


@dataclass(frozen=True, slots=True)
class CertificateRow:
    certificate: Certificate
    href: str
    created: Moment
    expires: Moment
    expired: bool

    @classmethod
    def of(cls, certificate: Certificate, now: datetime) -> CertificateRow:
        return cls(
            certificate=certificate,
            href=detail_url(certificate.certificate_id),
            created=Moment.of(certificate.created_at, now),
            expires=Moment.of(certificate.not_after, now),
            expired=certificate.not_after <= now,
        )


@dataclass(frozen=True, slots=True)
class Download:
    """A file offered inside the page itself (nothing to fetch later)."""

    label: str
    filename: str
    href: str

    @classmethod
    def of_pem(cls, label: str, filename: str, pem: str) -> Download:
        encoded = base64.b64encode(pem.encode()).decode("ascii")
        return cls(label, filename, f"data:{PEM_CONTENT_TYPE};base64,{encoded}")


def _pem_response(pem: str, filename: str) -> HttpResponse:
    response = HttpResponse(pem, content_type=PEM_CONTENT_TYPE)
    disposition = content_disposition_header(as_attachment=True, filename=filename)
    response["Content-Disposition"] = disposition or "attachment"
    return response


def _list_page(
    request: HttpRequest, form: CreateCertificateForm | None = None, status: int = 200
) -> HttpResponse:
    page = Paginator(Certificate.objects.order_by("-created_at", "certificate_id"), PAGE_SIZE)
    current = page.get_page(request.GET.get("page"))
    now = timezone.now()
    if form is None:
        form = CreateCertificateForm(initial={"request_token": secrets.token_urlsafe(16)})
    context = {
        "nav": "certificates",
        "page": current,
        "rows": [CertificateRow.of(certificate, now) for certificate in current],
        "total": page.count,
        "create_form": form,
    }
    return render(request, "console/certificates/list.html", context, status=status)


# --- "Create certificate": a token per form, so a resent form does not mint another --------


def _created_with(request: HttpRequest, token: str) -> str | None:
    if not token:
        return None
    created: dict[str, str] = request.session.get(CREATED_SESSION_KEY, {})
    return created.get(token)


def _remember_created(request: HttpRequest, token: str, certificate_id: str) -> None:
    if not token:
        return
    created: dict[str, str] = dict(request.session.get(CREATED_SESSION_KEY, {}))
    created[token] = certificate_id
    request.session[CREATED_SESSION_KEY] = dict(list(created.items())[-REMEMBERED_CREATIONS:])


# --- views ------------------------------------------------------------------------------------


@staff_required
@require_GET
def certificate_list(request: HttpRequest) -> HttpResponse:
    return _list_page(request)


@staff_required
@require_POST
def certificate_create(request: HttpRequest) -> HttpResponse:
    form = CreateCertificateForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form, status=400)
    token = form.cleaned_data["request_token"]
    earlier = _created_with(request, token)
    if earlier is not None:
        messages.info(
            request,
            "This certificate was already created by that form. Its private key was offered "
            "once and cannot be shown again.",
        )
        return HttpResponseRedirect(detail_url(earlier))
    try:
        created = certificates.create_certificate(
            thing_name=form.cleaned_data["thing_name"],
            created_by=request.user.get_username(),
        )
    except CertificateError as error:
        form.add_error("thing_name", str(error))
        return _list_page(request, form, status=400)
    certificate = created.certificate
    _remember_created(request, token, certificate.certificate_id)
    context = {
        "nav": "certificates",
        "certificate": certificate,
        "detail_url": detail_url(certificate.certificate_id),
        "downloads": [
            Download.of_pem(
                "Device certificate",
                certificate_filename(certificate),
                certificate.certificate_pem,
            ),
            Download.of_pem(
                "Private key", private_key_filename(certificate), created.private_key_pem
            ),
            Download.of_pem("Root CA certificate", ROOT_CA_FILENAME, created.root_ca_pem),
        ],
    }
    response = render(request, "console/certificates/created.html", context)
    add_never_cache_headers(response)  # the private key must not outlive this response
    return response


@staff_required
@require_http_methods(["GET", "POST"])
def certificate_register(request: HttpRequest) -> HttpResponse:
    form = RegisterCertificateForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            certificate = certificates.register_certificate_from_csr(
                form.cleaned_data["csr"],
                thing_name=form.cleaned_data["thing_name"],
                created_by=request.user.get_username(),
            )
        except CertificateError as error:
            form.add_error(None, str(error))
        else:
            messages.success(
                request,
                "Registered: the CA signed the request. The private key stays on the device; "
                "attach a policy so the device may connect.",
            )
            return HttpResponseRedirect(detail_url(certificate.certificate_id))
    context = {"nav": "certificates", "form": form}
    status = 400 if form.is_bound else 200
    return render(request, "console/certificates/register.html", context, status=status)


@staff_required
@require_GET
def certificate_detail(request: HttpRequest, certificate_id: str) -> HttpResponse:
    certificate = get_object_or_404(Certificate, pk=certificate_id)
    now = timezone.now()
    attached = certificates.attached_policy_names(certificate_id)
    policies = Policy.objects.filter(name__in=attached).order_by("name")
    attachable = Policy.objects.exclude(name__in=attached).order_by("name")
    info = pki.describe(pki.load_certificate(certificate.certificate_pem))
    context = {
        "nav": "certificates",
        "certificate": certificate,
        "row": CertificateRow.of(certificate, now),
        "valid_from": Moment.of(certificate.not_before, now),
        "arn": certificate_arn(certificate_id),
        "issuer": info.issuer_common_name,
        "policies": policies,
        "attach_form": AttachPolicyForm(choices=attachable),
        "can_attach": attachable.exists(),
        "is_active": certificate.status == CertificateStatus.ACTIVE,
        "is_revoked": certificate.status == CertificateStatus.REVOKED,
    }
    return render(request, "console/certificates/detail.html", context)


@staff_required
@require_GET
def certificate_download(request: HttpRequest, certificate_id: str) -> HttpResponse:
    certificate = get_object_or_404(Certificate, pk=certificate_id)
    return _pem_response(certificate.certificate_pem, certificate_filename(certificate))


@staff_required
@require_GET
def root_ca_download(request: HttpRequest) -> HttpResponse:
    return _pem_response(certificates.authority().certificate_pem, ROOT_CA_FILENAME)


def _set_status(request: HttpRequest, certificate_id: str, status: str, done: str) -> HttpResponse:
    certificate = get_object_or_404(Certificate, pk=certificate_id)
    try:
        certificates.set_certificate_status(certificate.certificate_id, status)
    except CertificateError as error:
        messages.error(request, f"Nothing changed: {error}.")
    else:
        messages.success(request, done)
    return HttpResponseRedirect(detail_url(certificate.certificate_id))


@staff_required
@require_POST
def certificate_activate(request: HttpRequest, certificate_id: str) -> HttpResponse:
    return _set_status(
        request,
        certificate_id,
        CertificateStatus.ACTIVE,
        "Activated: devices can connect with this certificate, as its policies allow.",
    )


@staff_required
@require_POST
def certificate_deactivate(request: HttpRequest, certificate_id: str) -> HttpResponse:
    return _set_status(
        request,
        certificate_id,
        CertificateStatus.INACTIVE,
        "Deactivated: connections using this certificate were closed, and new ones are "
        "refused until it is activated again.",
    )


@staff_required
@require_http_methods(["GET", "POST"])
def certificate_revoke(request: HttpRequest, certificate_id: str) -> HttpResponse:
    """GET: the confirmation (revoking is final); POST: revoke."""
    if request.method == "POST":
        return _set_status(
            request,
            certificate_id,
            CertificateStatus.REVOKED,
            "Revoked: connections using this certificate were closed. This is final.",
        )
    certificate = get_object_or_404(Certificate, pk=certificate_id)
    context = {
        "nav": "certificates",
        "certificate": certificate,
        "detail_url": detail_url(certificate_id),
        "is_revoked": certificate.status == CertificateStatus.REVOKED,
    }
    return render(request, "console/certificates/revoke.html", context)


@staff_required
@require_http_methods(["GET", "POST"])
def certificate_delete(request: HttpRequest, certificate_id: str) -> HttpResponse:
    """GET: the confirmation; POST: delete (retained.certificates refuses an ACTIVE one)."""
    certificate = get_object_or_404(Certificate, pk=certificate_id)
    if request.method == "POST":
        try:
            certificates.delete_certificate(certificate.certificate_id)
        except CertificateError as error:
            messages.error(request, f"Not deleted: {error}.")
            return HttpResponseRedirect(detail_url(certificate.certificate_id))
        messages.success(request, f"Deleted certificate {certificate.short_id}….")
        return HttpResponseRedirect(list_url())
    context = {
        "nav": "certificates",
        "certificate": certificate,
        "detail_url": detail_url(certificate_id),
        "is_active": certificate.status == CertificateStatus.ACTIVE,
        "policy_count": len(certificates.attached_policy_names(certificate_id)),
    }
    return render(request, "console/certificates/delete.html", context)


@staff_required
@require_POST
def certificate_attach(request: HttpRequest, certificate_id: str) -> HttpResponse:
    certificate = get_object_or_404(Certificate, pk=certificate_id)
    form = AttachPolicyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Nothing attached: choose an existing policy.")
        return HttpResponseRedirect(detail_url(certificate.certificate_id))
    policy = form.cleaned_data["policy"]
    try:
        attach_policy(policy, certificate_id=certificate.certificate_id)
    except PolicyError as error:
        messages.error(request, f"Nothing attached: {error}.")
    else:
        messages.success(request, f"Attached policy {policy.name}.")
    return HttpResponseRedirect(detail_url(certificate.certificate_id))


@staff_required
@require_POST
def certificate_detach(request: HttpRequest, certificate_id: str) -> HttpResponse:
    certificate = get_object_or_404(Certificate, pk=certificate_id)
    form = DetachPolicyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Nothing detached: no such policy.")
        return HttpResponseRedirect(detail_url(certificate.certificate_id))
    policy = form.cleaned_data["policy"]
    try:
        detached = detach_policy(policy, certificate_id=certificate.certificate_id)
    except PolicyError as error:
        messages.error(request, f"Nothing detached: {error}.")
    else:
        if detached:
            messages.success(request, f"Detached policy {policy.name}.")
        else:
            messages.info(request, f"Policy {policy.name} was not attached.")
    return HttpResponseRedirect(detail_url(certificate.certificate_id))
