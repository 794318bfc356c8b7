"""Alertmanager receivers in AlertmanagerConfig's camelCase form.

Field by field, from explicit tables: a field missing from the tables stops the export with
its path rather than being dropped, because a receiver that silently lost, say, its TLS
settings or its channel would fail only when an alert needs it. Every credential (the
``*_file`` fields, inline keys and passwords, and every webhook URL, which Alertmanager itself
treats as a secret) becomes a :class:`~tradeguard.k8sexport.secrets.SecretRefs` selector.
AlertmanagerConfig has no ``global`` section, so the global SMTP, Slack and PagerDuty settings
are written into each receiver that relies on them, as Alertmanager would apply them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tradeguard.k8sexport.errors import ExportError
from tradeguard.k8sexport.fields import (
    Convert,
    as_bool,
    as_duration,
    as_int,
    as_key_values,
    as_str,
    as_str_list,
)
from tradeguard.k8sexport.secrets import SecretRefs


def _objects(fields: Mapping[str, tuple[str, Convert]]) -> Convert:
    """A converter for a list of small objects (Slack fields, PagerDuty images and links)."""

    def convert(value: Any, where: str) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise ExportError(f"{where}: must be a list")
        out = []
        for n, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise ExportError(f"{where}[{n}]: must be a map")
            out.append(_plain(item, fields, f"{where}[{n}]", set()))
        return out

    return convert


def _plain(
    config: Mapping[str, Any],
    fields: Mapping[str, tuple[str, Convert]],
    where: str,
    handled: set[str],
) -> dict[str, Any]:
    """The fields of ``config`` that map one to one; ExportError on any field that is neither
    in ``fields`` nor in ``handled`` (translated by the caller)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in handled:
            continue
        if key not in fields:
            raise ExportError(f"{where}.{key}: no AlertmanagerConfig equivalent in this export")
        camel, convert = fields[key]
        out[camel] = convert(value, f"{where}.{key}")
    return out


COMMON: dict[str, tuple[str, Convert]] = {"send_resolved": ("sendResolved", as_bool)}
WEBHOOK = {
    **COMMON,
    "max_alerts": ("maxAlerts", as_int),
    "timeout": ("timeout", as_duration),
}
SLACK = {
    **COMMON,
    "channel": ("channel", as_str),
    "username": ("username", as_str),
    "color": ("color", as_str),
    "title": ("title", as_str),
    "title_link": ("titleLink", as_str),
    "pretext": ("pretext", as_str),
    "text": ("text", as_str),
    "footer": ("footer", as_str),
    "fallback": ("fallback", as_str),
    "callback_id": ("callbackId", as_str),
    "icon_emoji": ("iconEmoji", as_str),
    "icon_url": ("iconURL", as_str),
    "image_url": ("imageURL", as_str),
    "thumb_url": ("thumbURL", as_str),
    "link_names": ("linkNames", as_bool),
    "short_fields": ("shortFields", as_bool),
    "mrkdwn_in": ("mrkdwnIn", as_str_list),
    "message_text": ("messageText", as_str),
    "update_message": ("updateMessage", as_bool),
    "timeout": ("timeout", as_duration),
    "fields": (
        "fields",
        _objects(
            {"title": ("title", as_str), "value": ("value", as_str), "short": ("short", as_bool)}
        ),
    ),
}
PAGERDUTY = {
    **COMMON,
    "url": ("url", as_str),
    "client": ("client", as_str),
    "client_url": ("clientURL", as_str),
    "description": ("description", as_str),
    "severity": ("severity", as_str),
    "class": ("class", as_str),
    "component": ("component", as_str),
    "group": ("group", as_str),
    "source": ("source", as_str),
    "timeout": ("timeout", as_duration),
    "details": ("details", as_key_values),
    "images": (
        "pagerDutyImageConfigs",
        _objects({"src": ("src", as_str), "alt": ("alt", as_str), "href": ("href", as_str)}),
    ),
    "links": (
        "pagerDutyLinkConfigs",
        _objects({"href": ("href", as_str), "text": ("alt", as_str)}),
    ),
}
EMAIL = {
    **COMMON,
    "to": ("to", as_str),
    "from": ("from", as_str),
    "smarthost": ("smarthost", as_str),
    "hello": ("hello", as_str),
    "auth_username": ("authUsername", as_str),
    "auth_identity": ("authIdentity", as_str),
    "headers": ("headers", as_key_values),
    "html": ("html", as_str),
    "text": ("text", as_str),
    "require_tls": ("requireTLS", as_bool),
}
HTTP_CONFIG = {
    "follow_redirects": ("followRedirects", as_bool),
    "enable_http2": ("enableHttp2", as_bool),
    "proxy_url": ("proxyURL", as_str),
}
# Secret fields per receiver type: Alertmanager field (also with `_file`) -> CRD field.
SECRET_FIELDS = {
    "webhook_configs": {"url": "urlSecret"},
    "slack_configs": {"api_url": "apiURL"},
    "pagerduty_configs": {"routing_key": "routingKey", "service_key": "serviceKey"},
    "email_configs": {"auth_password": "authPassword", "auth_secret": "authSecret"},
}
PLAIN_FIELDS = {
    "webhook_configs": WEBHOOK,
    "slack_configs": SLACK,
    "pagerduty_configs": PAGERDUTY,
    "email_configs": EMAIL,
}
CRD_LIST = {
    "webhook_configs": "webhookConfigs",
    "slack_configs": "slackConfigs",
    "pagerduty_configs": "pagerdutyConfigs",
    "email_configs": "emailConfigs",
}
# Global settings -> the receiver type and field they are the default of.
GLOBAL_DEFAULTS = {
    "smtp_from": ("email_configs", "from"),
    "smtp_smarthost": ("email_configs", "smarthost"),
    "smtp_hello": ("email_configs", "hello"),
    "smtp_auth_username": ("email_configs", "auth_username"),
    "smtp_auth_identity": ("email_configs", "auth_identity"),
    "smtp_require_tls": ("email_configs", "require_tls"),
    "smtp_auth_password": ("email_configs", "auth_password"),
    "smtp_auth_password_file": ("email_configs", "auth_password_file"),
    "smtp_auth_secret": ("email_configs", "auth_secret"),
    "smtp_auth_secret_file": ("email_configs", "auth_secret_file"),
    "slack_api_url": ("slack_configs", "api_url"),
    "slack_api_url_file": ("slack_configs", "api_url_file"),
    "pagerduty_url": ("pagerduty_configs", "url"),
}
# Each receiver needs one of these set, from itself or a global default; Alertmanager itself
# rejects a receiver without.
REQUIRED = {
    "webhook_configs": ("urlSecret",),
    "slack_configs": ("apiURL",),
    "pagerduty_configs": ("routingKey", "serviceKey"),
}


# Secret key names for inline values: <receiver>-<hint>, the hint saying what the value is.
KEY_HINTS = {
    "url": "webhook-url",
    "username": "basic-auth-username",
    "password": "basic-auth-password",
    "credentials": "authorization-credentials",
}


def _secret(
    config: Mapping[str, Any],
    field: str,
    receiver: str,
    where: str,
    secrets: SecretRefs,
    from_global: Mapping[str, str] | None = None,
) -> dict[str, str] | None:
    """The selector for ``field`` (inline) or ``field_file`` of ``config`` at ``where``; None
    when neither is set. ``from_global`` maps a field taken from ``global`` to its setting,
    so the key's description names the setting the user actually wrote."""
    inside = where.removeprefix(f"receivers[{receiver}].")
    for name in (f"{field}_file", field):
        if name not in config:
            continue
        value = as_str(config[name], f"{where}.{name}")
        label = f"global.{from_global[name]}" if from_global and name in from_global else None
        label = label or f"{inside}.{name}"
        if name.endswith("_file"):
            return secrets.from_file(value, receiver, label)
        hint = f"{receiver}-{KEY_HINTS.get(field, field.replace('_', '-'))}"
        return secrets.from_inline(value, hint, receiver, label)
    return None


def http_config(config: Any, receiver: str, where: str, secrets: SecretRefs) -> dict[str, Any]:
    """``http_config`` as ``httpConfig``: authorization, basic auth and bearer token become
    Secret selectors; TLS, OAuth 2 and proxy headers are not translated (ExportError)."""
    if not isinstance(config, Mapping):
        raise ExportError(f"{where}: must be a map")
    handled = {"authorization", "basic_auth", "bearer_token", "bearer_token_file"}
    out = _plain(config, HTTP_CONFIG, where, handled)
    if "authorization" in config:
        auth = config["authorization"]
        auth_where = f"{where}.authorization"
        if not isinstance(auth, Mapping) or set(auth) - {"type", "credentials", "credentials_file"}:
            raise ExportError(
                f"{auth_where}: only type, credentials and credentials_file translate"
            )
        converted: dict[str, Any] = {
            "type": as_str(auth.get("type", "Bearer"), f"{auth_where}.type")
        }
        ref = _secret(auth, "credentials", receiver, auth_where, secrets)
        if ref is not None:
            converted["credentials"] = ref
        out["authorization"] = converted
    if "basic_auth" in config:
        basic = config["basic_auth"]
        basic_where = f"{where}.basic_auth"
        allowed = {"username", "username_file", "password", "password_file"}
        if not isinstance(basic, Mapping) or set(basic) - allowed:
            raise ExportError(f"{basic_where}: only username and password (or _file) translate")
        converted = {}
        for part in ("username", "password"):
            # The CRD takes the user name from the Secret as well.
            ref = _secret(basic, part, receiver, basic_where, secrets)
            if ref is not None:
                converted[part] = ref
        out["basicAuth"] = converted
    ref = _secret(config, "bearer_token", receiver, where, secrets)
    if ref is not None:
        out["bearerTokenSecret"] = ref
    return out


def receiver_config(
    kind: str,
    config: Any,
    receiver: str,
    where: str,
    globals_: Mapping[str, Any],
    secrets: SecretRefs,
) -> dict[str, Any]:
    """One ``<kind>`` entry (e.g. a ``slack_configs`` item) in the CRD's form."""
    if not isinstance(config, Mapping):
        raise ExportError(f"{where}: must be a map")
    merged = dict(config)
    from_global: dict[str, str] = {}
    secret_fields = SECRET_FIELDS[kind]
    for setting, (target_kind, field) in GLOBAL_DEFAULTS.items():
        base = field.removesuffix("_file")
        if (
            target_kind == kind
            and setting in globals_
            and base not in config
            and f"{base}_file" not in config
        ):
            merged[field] = globals_[setting]
            from_global[field] = setting
    handled = {"http_config", *secret_fields, *(f"{f}_file" for f in secret_fields)}
    out = _plain(merged, PLAIN_FIELDS[kind], where, handled)
    for field, camel in secret_fields.items():
        ref = _secret(merged, field, receiver, where, secrets, from_global)
        if ref is not None:
            out[camel] = ref
    needed = REQUIRED.get(kind, ())
    if needed and not any(camel in out for camel in needed):
        wanted = " or ".join(f for f, c in secret_fields.items() if c in needed)
        raise ExportError(f"{where}: no {wanted} (or {wanted}_file) here nor in global")
    if "http_config" in merged:
        out["httpConfig"] = http_config(
            merged["http_config"], receiver, f"{where}.http_config", secrets
        )
    return out


def receiver(
    item: Any, where: str, globals_: Mapping[str, Any], secrets: SecretRefs
) -> dict[str, Any]:
    """One receiver; ExportError for a notifier type this export does not translate."""
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise ExportError(f"{where}: a receiver must be a map with a `name`")
    name = item["name"]
    out: dict[str, Any] = {"name": name}
    for kind, configs in item.items():
        if kind == "name":
            continue
        if kind not in CRD_LIST:
            raise ExportError(f"receivers[{name}].{kind}: not translated by this export")
        if not isinstance(configs, list):
            raise ExportError(f"receivers[{name}].{kind}: must be a list")
        out[CRD_LIST[kind]] = [
            receiver_config(kind, config, name, f"receivers[{name}].{kind}[{n}]", globals_, secrets)
            for n, config in enumerate(configs)
        ]
    return out
