"""Django settings: embedded defaults (SQLite in WAL mode under the data dir, in-memory
channel layer), every knob overridable from the environment (see README, "Configuration")."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import dj_database_url

from retained.conf import Limits, env_bool, env_int, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env_path("RETAINED_DATA_DIR", BASE_DIR / "var")
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else generated once and kept (0600) in the data dir."""
    from_env = os.environ.get("SECRET_KEY")
    if from_env:
        return from_env
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = [host.strip() for host in env_str("ALLOWED_HOSTS", "*").split(",") if host.strip()]
CSRF_TRUSTED_ORIGINS = [
    origin.strip() for origin in env_str("CSRF_TRUSTED_ORIGINS", "").split(",") if origin.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "retained",
    "console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "console.urls"
ASGI_APPLICATION = "console.asgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database() -> dict[str, Any]:
    url = os.environ.get("DATABASE_URL")
    if url:
        return dict(dj_database_url.parse(url, conn_max_age=600, conn_health_checks=True))
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "db.sqlite3",
        "CONN_MAX_AGE": 600,
        "OPTIONS": {
            # WAL lets readers run while the writer commits; IMMEDIATE takes the write lock at
            # BEGIN so two writers queue on busy_timeout instead of failing to upgrade a lock.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 12 * 3600  # a working day; signing in again after that is cheap
CSRF_COOKIE_SAMESITE = "Lax"
# `serve` speaks plain HTTP, where a browser would drop Secure cookies: set
# RETAINED_SECURE_COOKIES=true behind an HTTPS proxy. SESSION_COOKIE_SECURE: its old name.
SESSION_COOKIE_SECURE = env_bool(
    "RETAINED_SECURE_COOKIES", env_bool("SESSION_COOKIE_SECURE", False)
)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Sign-in throttling (console and admin; in this process's memory): this many failed
# attempts for one username, or from one client address, within the lockout period refuse
# further attempts (HTTP 429) for that period. 0 = no limit.
RETAINED_LOGIN_FAILURES_PER_USERNAME = env_int("RETAINED_LOGIN_FAILURES_PER_USERNAME", 5, minimum=0)
RETAINED_LOGIN_FAILURES_PER_IP = env_int("RETAINED_LOGIN_FAILURES_PER_IP", 20, minimum=0)
RETAINED_LOGIN_LOCKOUT_SECONDS = env_int("RETAINED_LOGIN_LOCKOUT_SECONDS", 300, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}

# --- the product's own settings -------------------------------------------------------------
RETAINED_LIMITS = Limits.from_environment()
RETAINED_REGION = env_str("RETAINED_REGION", "us-east-1")
RETAINED_ACCOUNT_ID = env_str("RETAINED_ACCOUNT_ID", "123456789012")
# Regions a SigV4 credential scope may name; "*" accepts any (clients pick a region by config).
RETAINED_ALLOWED_REGIONS = env_str("RETAINED_ALLOWED_REGIONS", "*")
RETAINED_WILDCARD_DELIVERY = env_bool("RETAINED_WILDCARD_DELIVERY", False)
# "true" / "false"; unset: anonymous MQTT clients only while the listener is on loopback.
RETAINED_ALLOW_ANONYMOUS = env_str("RETAINED_ALLOW_ANONYMOUS", "").strip().lower()
RETAINED_SWEEP_INTERVAL_SECONDS = float(env_str("RETAINED_SWEEP_INTERVAL_SECONDS", "60"))
# Extra names (DNS or IP, comma-separated) the TLS listener's certificate must cover, besides
# localhost, 127.0.0.1, ::1 and this machine's hostname.
RETAINED_TLS_HOSTNAMES = [
    name.strip() for name in env_str("RETAINED_TLS_HOSTNAMES", "").split(",") if name.strip()
]
