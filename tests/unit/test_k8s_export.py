"""The prometheus-operator export: every object it writes is one the API server accepts, and
nothing of the rules, the routing or the secrets' secrecy is lost on the way.

Acceptance is checked against the real CRD schemas (tests/data/crds, prometheus-operator
v0.93.0), made stricter in two ways the API server is lenient: an unknown field is an error
here (the server would prune it silently, losing whatever it said), and the nested routes,
which the CRD leaves untyped, are checked against the route schema too (the operator reads
them as routes). Routing is checked by walking the exported tree for every alert of
deploy/alertmanager/routes.yml, the table ``amtool`` checks the shipped configuration against.
"""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tradeguard.k8sexport.alertmanager import alertmanager_config
from tradeguard.k8sexport.errors import ExportError
from tradeguard.k8sexport.export import (
    ExportOptions,
    ExportResult,
    Translation,
    build,
    export,
    summary,
)
from tradeguard.k8sexport.matchers import parse_matchers
from tradeguard.k8sexport.meta import DEFAULT_LABELS, is_dns1123_subdomain, parse_labels
from tradeguard.k8sexport.writer import MARKER
from tradeguard.rulecheck.routing import load_routes_table

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "tests" / "data" / "crds"
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
ALERTMANAGER = REPO / "deploy" / "alertmanager"
NAMESPACE = "monitoring"
BASE_URL = "https://tradeguard.example.com/console"
SECRET = "tradeguard-alertmanager"


# --- the CRD schemas ------------------------------------------------------------------------


class _CrdLoader(yaml.SafeLoader):
    """PyYAML (YAML 1.1) reads a bare ``=`` as its special "value" tag; the CRDs' matchType
    enums list ``=`` unquoted, meaning the string."""


_CrdLoader.add_constructor(
    "tag:yaml.org,2002:value",
    lambda loader, node: loader.construct_scalar(node),
)


def _strict(schema: Any) -> Any:
    """``schema`` with unknown fields forbidden wherever it lists the fields and does not
    say to keep unknown ones (the server prunes them; a pruned field is a lost setting)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _python_regex(pattern: str) -> str:
    """A CRD pattern (Go RE2) for Python's ``re``: RE2 lets ``(?i)`` open a group, or follow
    ``^``, and apply to the rest of it; Python 3.11 wants such a flag scoped, ``(?i:...)``."""
    if pattern.startswith("^(?i)"):
        pattern = "(?i)^" + pattern[5:]
    while (start := pattern.find("((?i)")) >= 0:
        depth, end = 0, start
        for end in range(start, len(pattern)):
            if pattern[end] == "(" and pattern[end - 1] != "\\":
                depth += 1
            elif pattern[end] == ")" and pattern[end - 1] != "\\":
                depth -= 1
                if depth == 0:
                    break
        pattern = f"{pattern[:start]}(?i:{pattern[start + 5 : end]}){pattern[end + 1 :]}"
    return pattern


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not re.search(_python_regex(pattern), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


CrdValidator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})


@cache
def _crd(file: str) -> dict[str, Any]:
    with (CRDS / file).open(encoding="utf-8") as handle:
        crd: dict[str, Any] = yaml.load(handle, Loader=_CrdLoader)
    return crd


@cache
def _schema(kind: str, version: str) -> dict[str, Any]:
    files = {
        "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
        "AlertmanagerConfig": "monitoring.coreos.com_alertmanagerconfigs.yaml",
    }
    crd = _crd(files[kind])
    assert crd["spec"]["names"]["kind"] == kind
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema: dict[str, Any] = _strict(entry["schema"]["openAPIV3Schema"])
    return schema


def _nested_routes(route: Mapping[str, Any], path: str) -> Iterator[tuple[str, Any]]:
    for n, child in enumerate(route.get("routes", [])):
        yield f"{path}.routes[{n}]", child
        if isinstance(child, Mapping):
            yield from _nested_routes(child, f"{path}.routes[{n}]")


def crd_errors(obj: Mapping[str, Any]) -> list[str]:
    """Why the API server (strictly) would reject ``obj``; [] if it would accept it."""
    group, _, version = str(obj.get("apiVersion", "")).partition("/")
    assert group == "monitoring.coreos.com", obj.get("apiVersion")
    schema = _schema(str(obj["kind"]), version)
    validator = CrdValidator(schema)
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)
    ]
    if obj["kind"] == "AlertmanagerConfig" and isinstance(obj.get("spec"), Mapping):
        route_schema = schema["properties"]["spec"]["properties"]["route"]
        route_validator = CrdValidator(route_schema)
        for path, child in _nested_routes(obj["spec"].get("route", {}), "spec.route"):
            errors += [
                f"{path}.{'.'.join(map(str, e.absolute_path))}: {e.message}"
                for e in route_validator.iter_errors(child)
            ]
    return errors


# --- the export of the shipped files ---------------------------------------------------------


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    options = ExportOptions(repo=REPO, out_dir=out, namespace=NAMESPACE, runbook_base_url=BASE_URL)
    lines: list[str] = []
    export(options, lines.append)
    return out


def _documents(out: Path) -> dict[str, dict[str, Any]]:
    """File name -> the object in it, as ``kubectl apply`` would read it."""
    found = {}
    for path in sorted(out.glob("*.yaml")):
        (document,) = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        found[path.name] = document
    return found


@pytest.fixture(scope="module")
def documents(out_dir: Path) -> dict[str, dict[str, Any]]:
    return _documents(out_dir)


def _of_kind(documents: Mapping[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents.values() if d["kind"] == kind]


@pytest.fixture(scope="module")
def am_config(documents: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    (config,) = _of_kind(documents, "AlertmanagerConfig")
    return config


def _source_rules() -> list[tuple[str, str, dict[str, Any]]]:
    """(file, group, rule) of every rule in the shipped rule files."""
    found = []
    for path in sorted(RULES_DIR.glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            found.extend((path.name, group["name"], rule) for rule in group["rules"])
    return found


def test_every_exported_object_validates_against_its_crd(
    documents: Mapping[str, dict[str, Any]],
) -> None:
    checked = _of_kind(documents, "PrometheusRule") + _of_kind(documents, "AlertmanagerConfig")
    assert len(checked) == len(list(RULES_DIR.glob("*.rules.yml"))) + 1
    problems = {
        name: crd_errors(doc) for name, doc in documents.items() if doc["kind"] != "ConfigMap"
    }
    assert {name: errors for name, errors in problems.items() if errors} == {}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting ``path`` (dots; list indices as numbers) of an object to ``value``."""

    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = obj
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value

    return mutate


_DELETE = object()
BROKEN = {
    "a nested route's matcher without name": (
        "AlertmanagerConfig",
        _set("spec.route.routes.0.matchers.0.name", _DELETE),
    ),
    "an inhibit matcher without name": (
        "AlertmanagerConfig",
        _set("spec.inhibitRules.0.sourceMatch.0.name", _DELETE),
    ),
    "a matchType Alertmanager does not know": (
        "AlertmanagerConfig",
        _set("spec.route.routes.0.matchers.0.matchType", "=="),
    ),
    "a misspelt route field": ("AlertmanagerConfig", _set("spec.route.groupby", ["alertname"])),
    "a nested route's bad duration": (
        "AlertmanagerConfig",
        _set("spec.route.routes.0.repeatInterval", "30 seconds"),
    ),
    "a secret reference without key": (
        "AlertmanagerConfig",
        _set("spec.receivers.0.webhookConfigs.0.urlSecret", {"name": SECRET}),
    ),
    "a `for` of the wrong type": ("PrometheusRule", _set("spec.groups.0.rules.1.for", 30)),
    "a `for` that is no duration": ("PrometheusRule", _set("spec.groups.0.rules.1.for", "soon")),
    "a rule without expr": ("PrometheusRule", _set("spec.groups.0.rules.0.expr", _DELETE)),
    "a label that is no string": (
        "PrometheusRule",
        _set("spec.groups.0.rules.0.labels.severity", 2),
    ),
    "a group without name": ("PrometheusRule", _set("spec.groups.0.name", _DELETE)),
    "a rule field PrometheusRule does not know": (
        "PrometheusRule",
        _set("spec.groups.0.rules.0.severity", "warning"),
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_the_schema_check_rejects_a_broken_object(
    case: str, documents: Mapping[str, dict[str, Any]]
) -> None:
    """The check above can fail: each of these breaks one thing in a valid object."""
    kind, mutate = BROKEN[case]
    name = "prometheusrule-tradeguard-signal-stream.yaml" if kind == "PrometheusRule" else None
    valid = documents[name] if name else _of_kind(documents, kind)[0]
    assert crd_errors(valid) == []
    broken = copy.deepcopy(valid)
    mutate(broken)
    assert crd_errors(broken), f"{case} was accepted"


def test_every_alert_is_exported_once_with_identical_expr_for_and_labels(
    documents: Mapping[str, dict[str, Any]],
) -> None:
    """Rule by rule, in place: an alert split into a warning and a critical rule under one
    name is two rules here too, each with its own expr, ``for`` and labels."""
    exported = [
        (group["name"], rule)
        for doc in _of_kind(documents, "PrometheusRule")
        for group in doc["spec"]["groups"]
        for rule in group["rules"]
    ]
    sources = _source_rules()
    names = sorted(rule.get("alert") or rule["record"] for _, _, rule in sources)
    assert sorted(rule.get("alert") or rule["record"] for _, rule in exported) == names
    assert len(exported) == len(sources)
    in_group: dict[str, list[dict[str, Any]]] = {}
    for group, rule in exported:
        in_group.setdefault(group, []).append(rule)
    seen: dict[str, int] = {}
    for file, group, rule in sources:
        seen[group] = seen.get(group, -1) + 1
        out = in_group[group][seen[group]]
        name = f"{rule.get('alert') or rule['record']} ({file})"
        assert out.get("alert") == rule.get("alert"), name
        assert out["expr"] == rule["expr"], name
        assert out.get("for") == rule.get("for"), name
        assert out.get("labels") == rule.get("labels"), name
        expected = dict(rule.get("annotations", {}))
        match = re.fullmatch(r"docs/runbooks/(\w+)\.md", expected.get("runbook_url", ""))
        if match:
            expected["runbook_url"] = f"{BASE_URL}/runbooks/{match.group(1)}"
        assert out.get("annotations") == expected, name
        assert list(out) == list(rule), f"{name}: fields added, lost or reordered"


def test_groups_keep_their_names_intervals_and_files(
    documents: Mapping[str, dict[str, Any]],
) -> None:
    for path in sorted(RULES_DIR.glob("*.rules.yml")):
        source = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        name = "tradeguard-" + path.name.removesuffix(".rules.yml").replace("_", "-")
        exported = documents[f"prometheusrule-{name}.yaml"]["spec"]["groups"]
        assert [(g["name"], g.get("interval")) for g in exported] == [
            (g["name"], g.get("interval")) for g in source
        ]
        assert [len(g["rules"]) for g in exported] == [len(g["rules"]) for g in source]


def test_objects_are_named_labelled_and_namespaced_for_the_operator(
    documents: Mapping[str, dict[str, Any]],
) -> None:
    for file, doc in documents.items():
        meta = doc["metadata"]
        assert is_dns1123_subdomain(meta["name"]), file
        assert file == f"{doc['kind'].lower()}-{meta['name']}.yaml"
        assert meta["namespace"] == NAMESPACE
        assert meta["labels"] == dict(DEFAULT_LABELS)
    assert "tradeguard-signal-stream" in {d["metadata"]["name"] for d in documents.values()}


def test_labels_given_replace_the_default_and_bad_ones_are_refused() -> None:
    labels = parse_labels(["release=kube-prometheus-stack", "team=trading"])
    assert labels == {"release": "kube-prometheus-stack", "team": "trading"}
    translation = build(ExportOptions(repo=REPO, labels=labels))
    assert all(m.body["metadata"]["labels"] == labels for m in translation.manifests)
    assert all("namespace" not in m.body["metadata"] for m in translation.manifests)
    for bad in ("novalue", "bad key=x", "k=a value with spaces", f"k={'x' * 64}"):
        with pytest.raises(ExportError, match="--label"):
            parse_labels([bad])


# --- routing ---------------------------------------------------------------------------------


def _matches(matchers: list[dict[str, str]], labels: Mapping[str, str]) -> bool:
    for m in matchers:
        value = labels.get(m["name"], "")
        ok = {
            "=": value == m["value"],
            "!=": value != m["value"],
            "=~": re.fullmatch(m["value"], value) is not None,
            "!~": re.fullmatch(m["value"], value) is None,
        }[m["matchType"]]
        if not ok:
            return False
    return True


def _receivers(route: Mapping[str, Any], labels: Mapping[str, str], parent: str) -> list[str]:
    """Alertmanager's walk below a matching ``route``: children in order, each matching one
    stopping the walk unless it says continue; the route itself if no child matched."""
    own = route.get("receiver", parent)
    found: list[str] = []
    for child in route.get("routes", []):
        if _matches(child.get("matchers", []), labels):
            found += _receivers(child, labels, own)
            if not child.get("continue", False):
                break
    return found or [own]


def test_the_exported_routes_notify_every_alert_as_routes_yml_expects(
    am_config: Mapping[str, Any],
) -> None:
    """The operator puts the exported route under its root with a namespace matcher; an alert
    of that namespace then takes the route tree as the shipped alertmanager.yml routes it."""
    table = load_routes_table(ALERTMANAGER / "routes.yml")
    assert len(table) > 50
    top = am_config["spec"]["route"]
    scoped = {**top, "matchers": [{"name": "namespace", "value": NAMESPACE, "matchType": "="}]}
    wrong = {}
    for row in table:
        labels = {**row.labels, "namespace": NAMESPACE}
        assert _matches(scoped["matchers"], labels)
        got = tuple(_receivers(scoped, labels, ""))
        if got != row.receivers:
            wrong[row.alertname] = (got, row.receivers)
    assert wrong == {}


def test_receivers_inhibit_rules_and_timers_are_all_carried(am_config: Mapping[str, Any]) -> None:
    source = yaml.safe_load((ALERTMANAGER / "alertmanager.yml").read_text(encoding="utf-8"))
    spec = am_config["spec"]
    camel = {
        "webhook_configs": "webhookConfigs",
        "slack_configs": "slackConfigs",
        "pagerduty_configs": "pagerdutyConfigs",
        "email_configs": "emailConfigs",
    }
    assert [
        {camel[k]: len(v) for k, v in r.items() if k != "name"} | {"name": r["name"]}
        for r in source["receivers"]
    ] == [
        {k: len(v) for k, v in r.items() if k != "name"} | {"name": r["name"]}
        for r in spec["receivers"]
    ]
    assert len(spec["inhibitRules"]) == len(source["inhibit_rules"])
    for rule, out in zip(source["inhibit_rules"], spec["inhibitRules"], strict=True):
        assert out.get("equal") == rule.get("equal")
        assert len(out["sourceMatch"]) == len(rule["source_matchers"])
        assert len(out["targetMatch"]) == len(rule["target_matchers"])
    root = spec["route"]
    assert root["groupBy"] == source["route"]["group_by"]
    assert (root["groupWait"], root["groupInterval"], root["repeatInterval"]) == (
        source["route"]["group_wait"],
        source["route"]["group_interval"],
        source["route"]["repeat_interval"],
    )
    for child, out in zip(source["route"]["routes"], root["routes"], strict=True):
        assert out["receiver"] == child["receiver"]
        assert out.get("continue", False) == child.get("continue", False)
        assert out.get("repeatInterval") == child.get("repeat_interval")
        assert out.get("groupWait") == child.get("group_wait")


# --- secrets ---------------------------------------------------------------------------------


def _secret_values() -> list[str]:
    """Every secret value the repository or a developer's checkout holds: the Alertmanager and
    Compose secret files, and the secret-looking settings of the Compose env files."""
    values = []
    for folder in (ALERTMANAGER / "secrets", REPO / "deploy" / "compose" / "secrets"):
        for path in folder.iterdir():
            if path.is_file() and path.name not in ("README.md", ".gitignore"):
                values.append(path.read_text(encoding="utf-8").strip())
    for env in (REPO / "deploy" / "compose" / "env.example", REPO / "deploy" / ".env"):
        if env.is_file():
            for line in env.read_text(encoding="utf-8").splitlines():
                name, sep, value = line.partition("=")
                secret = re.search(r"PASSWORD|TOKEN|SECRET|KEY", name)
                if sep and secret and not name.lstrip().startswith("#") and value.strip():
                    values.append(value.strip().strip("'\""))
    return [v for v in values if len(v) >= 6]


def test_no_secret_value_reaches_the_output(out_dir: Path) -> None:
    values = _secret_values()
    assert len(values) >= 4  # the four Alertmanager placeholders at least
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(out_dir.iterdir()))
    translation = build(ExportOptions(repo=REPO, out_dir=out_dir, namespace=NAMESPACE))
    printed = "\n".join(summary_text(translation, out_dir))
    assert [v for v in values if v in text or v in printed] == []


def summary_text(translation: Translation, out: Path) -> list[str]:
    """The summary the command prints after writing ``translation`` to ``out``."""
    options = ExportOptions(repo=REPO, out_dir=out, namespace=NAMESPACE)
    return summary(ExportResult(translation, (), options))


def _selectors(node: Any) -> Iterator[dict[str, Any]]:
    """Every ``{name, key}`` Secret selector in ``node``."""
    if isinstance(node, Mapping):
        if set(node) == {"name", "key"}:
            yield dict(node)
        for value in node.values():
            yield from _selectors(value)
    elif isinstance(node, list):
        for item in node:
            yield from _selectors(item)


def test_credentials_refer_to_keys_of_one_secret_that_the_summary_lists(
    am_config: Mapping[str, Any], out_dir: Path
) -> None:
    refs = list(_selectors(am_config["spec"]["receivers"]))
    assert {r["name"] for r in refs} == {SECRET}
    keys = {r["key"] for r in refs}
    # A key per secret file, named after it, and one per distinct webhook URL.
    files = {p.name for p in (ALERTMANAGER / "secrets").iterdir() if p.name != "README.md"}
    assert files <= keys
    assert keys - files == {"responder-webhook-url", "responder-bypass-webhook-url"}
    for receiver in am_config["spec"]["receivers"]:
        for webhook in receiver.get("webhookConfigs", []):
            assert "url" not in webhook and "urlSecret" in webhook
    translation = build(ExportOptions(repo=REPO, out_dir=out_dir, namespace=NAMESPACE))
    listed = "\n".join(summary_text(translation, out_dir))
    for key in keys:
        assert f"  {key}: " in listed and f"--from-file={key}=" in listed


def _repo_with(tmp_path: Path, alertmanager_yml: str) -> Path:
    """A repository with one shipped rule file and the given alertmanager.yml."""
    rules = tmp_path / "deploy" / "prometheus" / "rules"
    rules.mkdir(parents=True)
    shutil.copy(RULES_DIR / "signal_stream.rules.yml", rules)
    (tmp_path / "deploy" / "alertmanager").mkdir()
    (tmp_path / "deploy" / "alertmanager" / "alertmanager.yml").write_text(alertmanager_yml)
    return tmp_path


INLINE_SECRETS = """
global:
  slack_api_url: https://hooks.slack.example/services/T0/B0/inline-slack-token-1
  smtp_smarthost: mail.example.com:587
  smtp_from: alerts@example.com
  smtp_auth_username: alerts
  smtp_auth_password: inline-smtp-password-2
route:
  receiver: hook
  routes:
    - receiver: page
      matchers: ['severity="critical"']
receivers:
  - name: hook
    webhook_configs:
      - url: https://relay.example.com/hook?token=inline-webhook-token-3
        http_config:
          basic_auth: {username: relay-user-4, password: inline-basic-password-5}
  - name: page
    pagerduty_configs:
      - routing_key: inline-routing-key-6
    slack_configs:
      - channel: '#page'
    email_configs:
      - to: oncall@example.com
"""


def test_secrets_written_inline_are_moved_out_too(tmp_path: Path) -> None:
    repo = _repo_with(tmp_path, INLINE_SECRETS)
    out = tmp_path / "out"
    result = export(ExportOptions(repo=repo, out_dir=out), lambda line: None)
    text = "\n".join(p.read_text() for p in out.iterdir()) + "\n".join(summary(result))
    for value in re.findall(r"inline-[a-z-]+-\d|relay-user-4", INLINE_SECRETS):
        assert value not in text
    (config,) = _of_kind(_documents(out), "AlertmanagerConfig")
    assert crd_errors(config) == []
    keys = {r["key"] for r in _selectors(config["spec"])}
    assert keys == {
        "hook-webhook-url",
        "hook-basic-auth-username",
        "hook-basic-auth-password",
        "page-routing-key",
        "page-api-url",
        "page-auth-password",
    }
    (email,) = config["spec"]["receivers"][1]["emailConfigs"]
    assert email["smarthost"] == "mail.example.com:587" and email["from"] == "alerts@example.com"


# --- what has no equivalent ------------------------------------------------------------------

UNTRANSLATABLE = {
    "receivers[page].opsgenie_configs": """
route: {receiver: page}
receivers:
  - name: page
    opsgenie_configs: [{api_key: x}]
""",
    "receivers[hook].webhook_configs[0].http_config.tls_config": """
route: {receiver: hook}
receivers:
  - name: hook
    webhook_configs:
      - url_file: secrets/url
        http_config: {tls_config: {insecure_skip_verify: true}}
""",
    "global.opsgenie_api_url": """
global: {opsgenie_api_url: https://api.opsgenie.example/}
route: {receiver: hook}
receivers: [{name: hook, webhook_configs: [{url_file: secrets/url}]}]
""",
    "route.routes[0].group_by_all": """
route:
  receiver: hook
  routes: [{receiver: hook, group_by_all: true}]
receivers: [{name: hook, webhook_configs: [{url_file: secrets/url}]}]
""",
    "time_intervals[0].time_intervals[0].location": """
route:
  receiver: hook
  routes: [{receiver: hook, mute_time_intervals: [nights]}]
time_intervals:
  - name: nights
    time_intervals: [{times: [{start_time: '22:00', end_time: '24:00'}], location: Europe/Berlin}]
receivers: [{name: hook, webhook_configs: [{url_file: secrets/url}]}]
""",
    "route.routes[0].receiver": """
route:
  receiver: hook
  routes: [{receiver: nobody}]
receivers: [{name: hook, webhook_configs: [{url_file: secrets/url}]}]
""",
}


@pytest.mark.parametrize("field", sorted(UNTRANSLATABLE))
def test_a_field_without_equivalent_stops_the_export_naming_it(field: str, tmp_path: Path) -> None:
    repo = _repo_with(tmp_path, UNTRANSLATABLE[field])
    with pytest.raises(ExportError) as caught:
        build(ExportOptions(repo=repo))
    message = str(caught.value)
    assert field in message and "\n" not in message
    assert message.startswith("deploy/alertmanager/alertmanager.yml: ")


TIME_INTERVALS = """
route:
  receiver: hook
  routes:
    - receiver: hook
      matchers: ['severity="warning"']
      mute_time_intervals: [nights]
      active_time_intervals: [office]
time_intervals:
  - name: office
    time_intervals:
      - weekdays: ['monday:friday']
        times: [{start_time: '09:00', end_time: '17:30'}]
        months: ['january:march', 'may']
        years: ['2026:2030']
mute_time_intervals:
  - name: nights
    time_intervals:
      - days_of_month: ['1:7', '-1']
        times: [{start_time: '22:00', end_time: '24:00'}]
receivers: [{name: hook, webhook_configs: [{url_file: secrets/url}]}]
"""


def test_time_intervals_translate_and_validate(tmp_path: Path) -> None:
    repo = _repo_with(tmp_path, TIME_INTERVALS)
    (config, *_) = build(ExportOptions(repo=repo)).alertmanager.manifests
    spec = config.body["spec"]
    assert crd_errors(config.body) == []
    assert spec["muteTimeIntervals"] == [
        {
            "name": "office",
            "timeIntervals": [
                {
                    "times": [{"startTime": "09:00", "endTime": "17:30"}],
                    "weekdays": ["monday:friday"],
                    "months": ["january:march", "may"],
                    "years": ["2026:2030"],
                }
            ],
        },
        {
            "name": "nights",
            "timeIntervals": [
                {
                    "times": [{"startTime": "22:00", "endTime": "24:00"}],
                    "daysOfMonth": [{"start": 1, "end": 7}, {"start": -1, "end": -1}],
                }
            ],
        },
    ]
    child = spec["route"]["routes"][0]
    assert (child["muteTimeIntervals"], child["activeTimeIntervals"]) == (["nights"], ["office"])
    broken = copy.deepcopy(config.body)
    broken["spec"]["muteTimeIntervals"][0]["timeIntervals"][0]["weekdays"] = ["funday"]
    assert crd_errors(broken)


def test_settings_left_out_are_documented_in_the_output(out_dir: Path) -> None:
    text = (out_dir / "alertmanagerconfig-tradeguard.yaml").read_text(encoding="utf-8")
    header = text[: text.index("\napiVersion:")]
    assert all(line.startswith("#") for line in header.splitlines())
    for said in ("global.resolve_timeout (5m)", "templates (templates/*.tmpl)", "namespace="):
        assert said in " ".join(header.replace("#", " ").split()), said
    templates = _of_kind(_documents(out_dir), "ConfigMap")
    (configmap,) = templates
    shipped = (ALERTMANAGER / "templates" / "tradeguard.tmpl").read_text(encoding="utf-8")
    assert configmap["data"] == {"tradeguard.tmpl": shipped}


# --- matchers, files -------------------------------------------------------------------------

MATCHERS = {
    'alertname="Watchdog"': [("alertname", "Watchdog", "=")],
    'component=~"a|b"': [("component", "a|b", "=~")],
    "alertname!=RedisDown": [("alertname", "RedisDown", "!=")],
    'job !~ "x.*"': [("job", "x.*", "!~")],
    '{a="1", b=~"2,3"}': [("a", "1", "="), ("b", "2,3", "=~")],
    r'msg="say \"hi\"\\n"': [("msg", 'say "hi"\\n', "=")],
    'empty=""': [("empty", "", "=")],
}


@pytest.mark.parametrize("text", sorted(MATCHERS))
def test_matcher_strings_become_objects(text: str) -> None:
    assert parse_matchers(text, "here") == [
        {"name": n, "value": v, "matchType": t} for n, v, t in MATCHERS[text]
    ]


@pytest.mark.parametrize("text", ["alertname", '="x"', 'a="unterminated', 'a="x" b="y"', ""])
def test_a_matcher_that_cannot_be_read_is_an_error(text: str) -> None:
    with pytest.raises(ExportError, match="here"):
        parse_matchers(text, "here")


def test_a_new_export_removes_its_stale_files_and_keeps_others(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    stale = out / "prometheusrule-tradeguard-gone.yaml"
    stale.write_text(f"{MARKER} --format prometheus-operator` from an old file.\nkind: x\n")
    mine = out / "kustomization.yaml"
    mine.write_text("resources: []\n")
    lines: list[str] = []
    result = export(ExportOptions(repo=REPO, out_dir=out), lines.append)
    assert not stale.exists() and mine.exists()
    assert sum(line.startswith("wrote ") for line in lines) == len(result.files)
    assert any(line.startswith(f"removed {stale}") for line in lines)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [p.name for p in result.files] + ["kustomization.yaml"]
    )


def test_the_translation_of_alertmanager_yml_alone(tmp_path: Path) -> None:
    """The module works on any alertmanager.yml path; the secret name is the caller's."""
    exported = alertmanager_config(
        ALERTMANAGER / "alertmanager.yml", None, {"a": "b"}, secret_name="am-creds"
    )
    (config, configmap) = exported.manifests
    assert {r["name"] for r in _selectors(config.body["spec"])} == {"am-creds"}
    assert configmap.kind == "ConfigMap"
    assert crd_errors(config.body) == []
