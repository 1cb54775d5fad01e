#!/usr/bin/env python3
"""Lint and render the eventer Helm chart with Helm's own Go code, and check the output.

Run by deploy/helm/test.sh, which installs what this needs (helm-python-sdk: the official Helm
v4 Go SDK as a library, with `lint` and offline `render`, i.e. `helm lint` and
`helm template`; PyYAML). For each value set below the chart is linted (strict) and
rendered, and the manifests are checked:

- the keys of ACK's ack-node-problem-detector chart land where they should: --sink URIs carry level/label/kinds/namespaces,
  project/logStore, and tokens only as ${VAR} references; each sink's block renders the exact URI expected;
- the Kafka sink's cacert/cert/key are files of a Secret mounted read-only;
- every ${VAR} an argument uses is defined in the container's environment, and secrets come
  from secretKeyRef (never a literal value), and no secret value appears outside the Secret;
- RBAC is least privilege: events get/list/watch cluster-wide; configmaps and leases only in
  the release's namespace, get/update only on the names the arguments use;
- securityContext (non-root, read-only root filesystem, no capabilities), probes on
  /healthz and /readyz, leader election whenever there is more than one replica;
- a ServiceMonitor, when enabled, selects the metrics Service and scrapes its /metrics;
- invalid values fail with a message that names the key; values.schema.json describes every
  value of values.yaml, so a misspelt key (given as `--set` would give it) fails lint and render;
- node-problem-detector (npd.*, alibaba_cloud_plugins): the DaemonSet runs the given image on every
  node, its monitors follow NPD's config format (the fields of NPD 0.6's Go structs, patterns that
  match real kernel log lines, plugin scripts that exist in the image or in the ConfigMap), it
  mounts read-only exactly the host paths its monitors read, is privileged only for /dev/kmsg and
  fd_check, and its RBAC is create/patch events and patch nodes/status;
- docs/node-problem-detector.md's filter names every problem reason the chart's monitors report.

The plain manifests in deploy/kubernetes get the same checks.

With EVENTER_BIN=<path to an eventer binary that has the `check` subcommand>, every rendered
argument list is also validated by `eventer check` (with dummy secrets in the environment, and
Secret volumes given files of a CA and a client certificate made with `openssl`), so the URIs
are checked by eventer's own parser and the Kafka sink loads its TLS files.

Prints one line per check and ends with `N passed, N failed`; exits 1 on any failure.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from urllib.parse import parse_qs

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "eventer"
PLAIN = ROOT / "deploy" / "kubernetes"
RELEASE, NAMESPACE = "ev", "monitoring"
FULLNAME = "ev-eventer"
SECRET_ENV = {"DINGTALK_TOKEN", "DINGTALK_SECRET", "AccessKeyId", "AccessKeySecret", "WEBHOOK_SIGN_SECRET", "WECOM_KEY", "WECHAT_CORP_SECRET", "LARK_WEBHOOK", "LARK_SECRET", "SLACK_WEBHOOK", "KAFKA_PASSWORD", "ES_PASSWORD", "ES_API_KEY"}
# eventer_core::uri::is_secret_key: the option names whose values eventer treats as secrets.
SECRET_OPTIONS = {"access_token", "sign", "secret", "token", "password", "pw", "accesskeyid", "accesskeysecret", "securitytoken", "writekey", "key", "apikey", "api_key"}
# Options of the Kafka sink that name files: mounted from a Secret, never a secret themselves.
KAFKA_FILES = ("cacert", "cert", "key")
NPD = "node-problem-detector"
# /config/plugin/*.sh in ACK's NPD image v0.6.3-16-g30dab97 (its Dockerfile adds config/ of
# github.com/AliyunContainerService/node-problem-detector at commit 30dab97).
IMAGE_SCRIPTS = {"/config/plugin/check_fd.sh", "/config/plugin/check_ntp.sh", "/config/plugin/network_problem.sh"}
DOCS_NPD = ROOT / "docs" / "node-problem-detector.md"

results: list[tuple[str, str | None]] = []


class CheckFailed(Exception):
    pass


def expect(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


def check(name: str):
    """Run the decorated function now, recording a pass or a failure."""

    def run(fn):
        try:
            fn()
        except CheckFailed as e:
            results.append((name, str(e)))
        except Exception:  # a crash in a check is a failure too
            results.append((name, traceback.format_exc().strip().splitlines()[-1]))
        else:
            results.append((name, None))
        return fn

    return run


# --- rendering ---------------------------------------------------------------------------


def helm():
    import helm_python

    return helm_python


def lint(values: dict) -> list[str]:
    report = helm().lint(str(CHART), values, strict=True, namespace=NAMESPACE)
    problems = [m["error"] for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    return problems + list(report.get("errors") or [])


def set_values(*expressions: str) -> dict:
    """Values as `helm --set a=b --set c=d` gives them (Helm's own strvals parser)."""
    values: dict = {}
    for expression in expressions:
        merge(values, helm().parse_set_string(expression))
    return values


def merge(into: dict, other: dict) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


def render(values: dict) -> list[dict]:
    with helm().Chart.load(str(CHART)) as chart:
        out = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("_template", path)
                docs.append(doc)
    return docs


def render_error(values: dict) -> str:
    try:
        render(values)
    except Exception as e:  # HelmRenderError
        return str(e)
    return ""


def plain_manifests() -> tuple[list[dict], str]:
    kustomization = yaml.safe_load((PLAIN / "kustomization.yaml").read_text())
    namespace = kustomization["namespace"]
    docs = []
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((PLAIN / resource).read_text()):
            if not doc:
                continue
            # What kustomize does with `namespace:`: set it on namespaced objects.
            if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding", "Namespace"):
                doc["metadata"]["namespace"] = namespace
            doc["_template"] = resource
            docs.append(doc)
    return docs, namespace


# --- accessors ---------------------------------------------------------------------------


def is_npd(doc: dict) -> bool:
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == NPD


def eventer_docs(docs: list[dict]) -> list[dict]:
    return [d for d in docs if not is_npd(d)]


def npd_docs(docs: list[dict]) -> list[dict]:
    return [d for d in docs if is_npd(d)]


def only(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    expect(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0]


def kinds(docs: list[dict]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def container(docs: list[dict]) -> dict:
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    expect(len(pod["containers"]) == 1, "one container")
    return pod["containers"][0]


def args(docs: list[dict]) -> list[str]:
    return container(docs)["args"]


def flag(docs: list[dict], name: str) -> list[str]:
    prefix = f"--{name}="
    return [a[len(prefix):] for a in args(docs) if a.startswith(prefix)]


def split_uri(uri: str) -> tuple[str, str, dict]:
    """scheme, target and options of a component URI, split as eventer splits it."""
    cut = min([p for p in (uri.find(":"), uri.find("?")) if p >= 0], default=len(uri))
    scheme, rest = uri[:cut], uri[cut:]
    rest = rest[1:] if rest.startswith(":") else rest
    target, _, query = rest.partition("?")
    return scheme, target, parse_qs(query, keep_blank_values=True)


def sinks(docs: list[dict], scheme: str) -> list[tuple[str, dict]]:
    """(target, query options) of each --sink with this scheme."""
    return [(t, q) for s, t, q in map(split_uri, flag(docs, "sink")) if s == scheme]


def one_sink(docs: list[dict], scheme: str) -> tuple[str, dict]:
    found = sinks(docs, scheme)
    expect(len(found) == 1, f"expected one {scheme} sink, found {len(found)}: {flag(docs, 'sink')}")
    return found[0]


def env(docs: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in container(docs).get("env", [])}


def secret_data(docs: list[dict]) -> dict[str, str]:
    secret = only(docs, "Secret")
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


def is_secret_option(key: str) -> bool:
    key = key.lower()
    return key in SECRET_OPTIONS or key.endswith(("secret", "token", "password"))


def secret_mounts(docs: list[dict]) -> dict[str, tuple[str, set[str]]]:
    """mountPath -> (Secret name, file names) of the container's read-only Secret volumes."""
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    found = {}
    for mount in container(docs).get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret and mount.get("readOnly"):
            found[mount["mountPath"]] = (secret["secretName"], {i["path"] for i in secret.get("items", [])})
    return found


def mounted_secret_file(docs: list[dict], path: str) -> bool:
    directory, _, file = path.rpartition("/")
    mount = secret_mounts(docs).get(directory)
    return mount is not None and file in mount[1]


# --- invariants every rendering must satisfy -------------------------------------------


def invariants(docs: list[dict], namespace: str) -> None:
    deployment = only(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = container(docs)
    a = c["args"]
    e = env(docs)

    # Namespaced objects in the release's namespace.
    for d in docs:
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            expect(d["metadata"].get("namespace") == namespace, f"{d['kind']} {d['metadata']['name']} not in {namespace}")

    # Security context.
    sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
    expect(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    expect(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false")
    expect(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities drop ALL")
    expect(sc.get("runAsNonRoot") is True or psc.get("runAsNonRoot") is True, "runAsNonRoot")
    expect(psc.get("runAsUser", sc.get("runAsUser", 0)) != 0, "a non-zero runAsUser")
    expect("privileged" not in sc or sc["privileged"] is False, "not privileged")

    # Probes and the metrics port: the port named http is --healthz-port.
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    healthz = [x for x in a if x.startswith("--healthz-port=")]
    port = int(healthz[0].split("=", 1)[1]) if healthz else 8084
    expect(ports.get("http") == port, f"container port http {ports.get('http')} is --healthz-port {port}")
    expect(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness on /healthz")
    expect(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness on /readyz")
    for probe in ("livenessProbe", "readinessProbe"):
        expect(c[probe]["httpGet"]["port"] in ("http", port), f"{probe} on the health port")
    expect("memory" in c.get("resources", {}).get("limits", {}), "a memory limit")

    # Exactly one source; leader election whenever more than one replica.
    expect(len([x for x in a if x.startswith("--source=")]) <= 1, "at most one --source")
    if deployment["spec"].get("replicas", 1) > 1:
        expect("--leader-elect" in a or "--leader-elect=true" in a, "replicas > 1 without --leader-elect")

    # Every ${VAR}/$VAR an argument uses (eventer expands them; an unset one is an error)
    # is defined, and secrets come from secretKeyRef only.
    for arg in a:
        for var in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", arg):
            name = var[0] or var[1]
            expect(name in e, f"argument uses ${{{name}}} but the container does not define it: {arg}")
    for name in SECRET_ENV & e.keys():
        ref = e[name].get("valueFrom", {}).get("secretKeyRef")
        expect(ref is not None and "value" not in e[name], f"env {name} must come from a secretKeyRef")
        secret = ref["name"]
        in_chart = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == secret]
        if in_chart and not ref.get("optional"):
            expect(ref["key"] in secret_data(docs), f"env {name}: key {ref['key']} missing from Secret {secret}")
    # Secret options in URIs are references, never values; so are the targets of the
    # sinks whose webhook is the credential.
    for uri in flag(docs, "sink"):
        scheme, target, query = split_uri(uri)
        if scheme in ("lark", "feishu", "slack"):
            expect(re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", target) is not None, f"the webhook is a literal in {uri}")
        for key, values in query.items():
            if scheme == "kafka" and key in KAFKA_FILES:
                for v in values:
                    expect(mounted_secret_file(docs, v), f"{key}={v} is not a file of a Secret mounted read-only in {uri}")
            elif is_secret_option(key):
                for v in values:
                    expect(re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", v) is not None, f"{key} is a literal in {uri}")
    # No value of the Secret appears in any other object.
    secrets = [d for d in docs if d["kind"] == "Secret"]
    if secrets:
        others = yaml.safe_dump([d for d in docs if d["kind"] != "Secret"])
        for key, value in secret_data(docs).items():
            if len(value) >= 4:
                expect(value not in others, f"the value of secret key {key} appears outside the Secret")

    # RBAC: least privilege.
    sa = pod["serviceAccountName"]
    cluster_role = only(docs, "ClusterRole")
    rules = cluster_role["rules"]
    event_rules = [r for r in rules if r["resources"] == ["events"]]
    expect(len(event_rules) == 2, "ClusterRole has two events rules")
    groups = set()
    for rule in event_rules:
        expect(set(rule["verbs"]) <= {"get", "list", "watch"}, f"ClusterRole verbs {rule['verbs']}")
        expect({"list", "watch"} <= set(rule["verbs"]), "events list and watch")
        expect("resourceNames" not in rule, "no resourceNames on events")
        groups.update(rule["apiGroups"])
    expect(groups == {"", "events.k8s.io"}, f"events in core and events.k8s.io, got {groups}")
    identity = {"apiGroups": [""], "resources": ["namespaces"], "resourceNames": ["kube-system"], "verbs": ["get"]}
    others = [r for r in rules if r["resources"] != ["events"]]
    expect(others == [identity], f"besides events, only get on the kube-system Namespace, got {others}")
    crb = only(docs, "ClusterRoleBinding")
    expect(crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role["metadata"]["name"]}, "ClusterRoleBinding refers to the ClusterRole")
    expect(crb["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}], f"ClusterRoleBinding subject {crb['subjects']}")
    for d in docs:
        for rule in d.get("rules", []):
            for field in ("apiGroups", "resources", "verbs"):
                expect("*" not in rule.get(field, []), f"wildcard in {d['kind']} {field}")

    checkpoint = [x.split("=", 1)[1] for x in a if x.startswith("--checkpoint=")]
    lease = [x.split("=", 1)[1] for x in a if x.startswith("--leader-elect-lease-name=")]
    leader = "--leader-elect" in a or "--leader-elect=true" in a
    roles = [d for d in docs if d["kind"] == "Role"]
    # The webhook's body templates: read and watched, never written.
    templates = {q["custom_body_configmap"][0] for _, q in sinks(docs, "webhook") if "custom_body_configmap" in q}
    if not checkpoint and not leader and not templates:
        expect(not roles and not [d for d in docs if d["kind"] == "RoleBinding"], "no Role without checkpoint or leader election")
        return
    role = only(docs, "Role")
    allowed = {"configmaps": set(), "leases": set()}
    watched = set()
    for rule in role["rules"]:
        expect(len(rule["resources"]) == 1 and rule["resources"][0] in allowed, f"Role resources {rule['resources']}")
        resource = rule["resources"][0]
        expect(rule["apiGroups"] == (["coordination.k8s.io"] if resource == "leases" else [""]), f"Role apiGroups {rule['apiGroups']}")
        if resource == "configmaps" and set(rule["verbs"]) == {"get", "list", "watch"}:
            expect(bool(rule.get("resourceNames")) and set(rule["resourceNames"]) <= templates, f"watched configmaps {rule.get('resourceNames')} are templates {templates}")
            watched.update(rule["resourceNames"])
            continue
        expect(set(rule["verbs"]) <= {"get", "create", "update"}, f"Role verbs {rule['verbs']}")
        if set(rule["verbs"]) & {"get", "update"}:
            expect(rule.get("resourceNames"), f"get/update on {resource} must name the object")
            allowed[resource].update(rule["resourceNames"])
    if checkpoint:
        scheme, _, where = checkpoint[0].partition(":")
        expect(scheme == "configmap", f"checkpoint scheme {scheme}")
        ns, _, name = where.partition("/")
        expect(ns in (namespace, "$(POD_NAMESPACE)"), f"checkpoint namespace {ns} is not {namespace}")
        expect(allowed["configmaps"] == {name}, f"Role names configmaps {allowed['configmaps']}, checkpoint is {name}")
        if ns == "$(POD_NAMESPACE)":
            expect(e["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace", "POD_NAMESPACE from the downward API")
    else:
        expect(not allowed["configmaps"], "configmaps access without a checkpoint")
    if leader:
        expect(len(lease) == 1, "--leader-elect-lease-name given")
        expect(allowed["leases"] == {lease[0]}, f"Role names leases {allowed['leases']}, lease is {lease}")
        expect("POD_NAME" in e and "POD_NAMESPACE" in e, "POD_NAME and POD_NAMESPACE for leader election")
        lens = [x.split("=", 1)[1] for x in a if x.startswith("--leader-elect-namespace=")]
        expect(lens in ([], [namespace]), f"lease namespace {lens}")
    else:
        expect(not allowed["leases"], "leases access without leader election")
    expect(watched == templates, f"Role reads the webhook templates {templates}, not {watched}")
    rb = only(docs, "RoleBinding")
    expect(rb["roleRef"]["kind"] == "Role" and rb["roleRef"]["name"] == role["metadata"]["name"], "RoleBinding refers to the Role")
    expect(rb["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}], f"RoleBinding subject {rb['subjects']}")


# --- node-problem-detector ---------------------------------------------------------------

# The JSON fields of NPD's monitor configurations, from its Go structs (NPD 0.6.3:
# pkg/systemlogmonitor/config.go with logwatchers/types.WatcherConfig and types.Rule;
# pkg/custompluginmonitor/types/config.go and types.CustomRule; pkg/types.Condition). NPD
# ignores unknown fields, so a misspelt one would silently not apply.
LOG_MONITOR_FIELDS = {"plugin", "pluginConfig", "logPath", "lookback", "delay", "bufferSize", "source", "conditions", "rules"}
LOG_RULE_FIELDS = {"type", "condition", "reason", "pattern"}
CUSTOM_MONITOR_FIELDS = {"plugin", "pluginConfig", "source", "conditions", "rules"}
CUSTOM_GLOBAL_FIELDS = {"invoke_interval", "timeout", "max_output_length", "concurrency", "enable_message_change_based_condition_update"}
CUSTOM_RULE_FIELDS = {"type", "condition", "reason", "path", "args", "timeout"}
CONDITION_FIELDS = {"type", "reason", "message"}


def go_duration(text: str) -> float:
    """Seconds of a Go duration such as 90s, 1m30s, 500ms."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    expect(parts and "".join(n + u for n, u in parts) == text, f"not a Go duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def check_conditions(monitor: dict, where: str) -> set[str]:
    types = set()
    for c in monitor.get("conditions", []):
        expect(set(c) <= CONDITION_FIELDS, f"{where}: condition fields {sorted(set(c) - CONDITION_FIELDS)}")
        expect(c.get("type") and c.get("reason"), f"{where}: a condition needs type and reason: {c}")
        types.add(c["type"])
    return types


def check_rule_kind(rule: dict, conditions: set[str], where: str) -> None:
    expect(rule.get("type") in ("temporary", "permanent"), f"{where}: rule type {rule.get('type')}")
    expect(rule.get("reason"), f"{where}: a rule without a reason")
    if rule["type"] == "permanent":
        expect(rule.get("condition") in conditions, f"{where}: permanent rule {rule['reason']} on an undeclared condition {rule.get('condition')}")


def check_log_monitor(monitor: dict, where: str) -> None:
    expect(set(monitor) <= LOG_MONITOR_FIELDS, f"{where}: fields NPD does not read: {sorted(set(monitor) - LOG_MONITOR_FIELDS)}")
    expect(monitor.get("plugin") in ("kmsg", "journald", "filelog"), f"{where}: plugin {monitor.get('plugin')}")
    expect(monitor.get("source"), f"{where}: no source")
    if "lookback" in monitor:
        go_duration(monitor["lookback"])
    conditions = check_conditions(monitor, where)
    expect(monitor.get("rules"), f"{where}: no rules")
    for rule in monitor["rules"]:
        expect(set(rule) <= LOG_RULE_FIELDS, f"{where}: rule fields {sorted(set(rule) - LOG_RULE_FIELDS)}")
        check_rule_kind(rule, conditions, where)
        re.compile(rule["pattern"])


def check_custom_monitor(monitor: dict, where: str, scripts: set[str]) -> None:
    expect(set(monitor) <= CUSTOM_MONITOR_FIELDS, f"{where}: fields NPD does not read: {sorted(set(monitor) - CUSTOM_MONITOR_FIELDS)}")
    expect(monitor.get("plugin") == "custom", f"{where}: plugin {monitor.get('plugin')}")
    expect(monitor.get("source"), f"{where}: no source")
    config = monitor.get("pluginConfig", {})
    expect(set(config) <= CUSTOM_GLOBAL_FIELDS, f"{where}: pluginConfig fields {sorted(set(config) - CUSTOM_GLOBAL_FIELDS)}")
    global_timeout = go_duration(config.get("timeout", "5s"))
    go_duration(config.get("invoke_interval", "30s"))
    conditions = check_conditions(monitor, where)
    expect(monitor.get("rules"), f"{where}: no rules")
    for rule in monitor["rules"]:
        expect(set(rule) <= CUSTOM_RULE_FIELDS, f"{where}: rule fields {sorted(set(rule) - CUSTOM_RULE_FIELDS)}")
        check_rule_kind(rule, conditions, where)
        # What NPD's Validate() refuses at start (it exits).
        if "timeout" in rule:
            expect(go_duration(rule["timeout"]) <= global_timeout, f"{where}: rule timeout {rule['timeout']} above the global {config.get('timeout')}")
        expect(rule.get("path") in scripts, f"{where}: script {rule.get('path')} is neither in the image nor in the ConfigMap")


def npd_pod(docs: list[dict]) -> dict:
    return only(npd_docs(docs), "DaemonSet")["spec"]["template"]["spec"]


def npd_container(docs: list[dict]) -> dict:
    pod = npd_pod(docs)
    expect(len(pod["containers"]) == 1, "one NPD container")
    return pod["containers"][0]


def npd_flag(docs: list[dict], name: str) -> list[str]:
    prefix = f"--{name}="
    found = [a[len(prefix):] for a in npd_container(docs)["args"] if a.startswith(prefix)]
    expect(len(found) <= 1, f"--{name} given twice")
    return found[0].split(",") if found else []


def npd_monitors(docs: list[dict]) -> tuple[dict[str, dict], dict[str, dict]]:
    """The system log and custom plugin monitors NPD's arguments name, parsed from the ConfigMap."""
    pod = npd_pod(docs)
    c = npd_container(docs)
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    files: dict[str, str] = {}
    for name, mount in mounts.items():
        cm = volumes[name].get("configMap")
        if not cm:
            continue
        data = [d for d in npd_docs(docs) if d["kind"] == "ConfigMap" and d["metadata"]["name"] == cm["name"]]
        expect(len(data) == 1, f"ConfigMap {cm['name']} of volume {name} is rendered")
        for item in cm["items"]:
            files[f"{mount['mountPath']}/{item['path']}"] = data[0]["data"][item["key"]]

    def parse(paths: list[str]) -> dict[str, dict]:
        missing = [p for p in paths if p not in files]
        expect(not missing, f"monitor files not mounted: {missing}")
        return {p: json.loads(files[p]) for p in paths}

    return parse(npd_flag(docs, "system-log-monitors")), parse(npd_flag(docs, "custom-plugin-monitors"))


def npd_invariants(docs: list[dict], namespace: str) -> None:
    ds = only(npd_docs(docs), "DaemonSet")
    pod = npd_pod(docs)
    c = npd_container(docs)
    # Its own pods only: eventer's Service, Deployment and PodDisruptionBudget select others.
    labels = ds["spec"]["template"]["metadata"]["labels"]
    expect(ds["spec"]["selector"]["matchLabels"].items() <= labels.items(), "DaemonSet selects its pods")
    for d in eventer_docs(docs):
        selector = d.get("spec", {}).get("selector", {})
        selector = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
        if selector:
            expect(not selector.items() <= labels.items(), f"{d['kind']} {d['metadata']['name']} selects NPD's pods")
    # Every node.
    expect({"operator": "Exists"} in pod.get("tolerations", []), f"tolerates every taint: {pod.get('tolerations')}")
    expect(c["command"] == ["/node-problem-detector"], f"command {c.get('command')}: the image's entrypoint adds a second kernel monitor")
    expect("--port=0" in c["args"], f"NPD's HTTP server off: {c['args']}")
    e = {x["name"]: x for x in c.get("env", [])}
    expect(e["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName", "NODE_NAME from spec.nodeName")
    expect("memory" in c.get("resources", {}).get("limits", {}), "a memory limit")

    # The monitors, in NPD's format; custom plugin scripts that exist.
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    expect(all(m["mountPath"] != "/config" for m in mounts.values()), "nothing mounted over the image's /config (its plugin scripts)")
    scripts = set(IMAGE_SCRIPTS)
    for name, mount in mounts.items():
        cm = volumes[name].get("configMap")
        for item in (cm or {}).get("items", []):
            if item["path"].startswith("plugin/"):
                expect(item.get("mode") == 0o555, f"script {item['path']} executable, read-only: mode {item.get('mode')}")
                scripts.add(f"{mount['mountPath']}/{item['path']}")
    log, custom = npd_monitors(docs)
    expect(log or custom, "NPD without a monitor")
    for path, monitor in log.items():
        check_log_monitor(monitor, path)
    for path, monitor in custom.items():
        check_custom_monitor(monitor, path, scripts)
    sources = [m["source"] for m in (*log.values(), *custom.values())]
    expect(len(sources) == len(set(sources)), f"each monitor its own source: {sources}")

    # Host access: read-only, and only what the monitors read.
    host = {name: volumes[name]["hostPath"]["path"] for name in mounts if "hostPath" in volumes[name]}
    for name in host:
        expect(mounts[name].get("readOnly") is True, f"host path {host[name]} mounted read-only")
    needed = {p for p in [volumes.get("localtime", {}).get("hostPath", {}).get("path")] if p}
    kmsg = any(m["plugin"] == "kmsg" for m in log.values())
    if kmsg:
        needed.add("/dev/kmsg")
        expect(mounts["kmsg"]["mountPath"] == "/dev/kmsg" and volumes["kmsg"]["hostPath"]["type"] == "CharDevice", "/dev/kmsg from the node")
    for m in log.values():
        if m["plugin"] == "journald":
            journal = [n for n, x in mounts.items() if x["mountPath"] == m.get("logPath", "/var/log/journal")]
            expect(journal and journal[0] in host, f"journal {m.get('logPath')} mounted from the node")
            needed.add(host[journal[0]])
    fd = any(r["path"] == "/config/plugin/check_fd.sh" for m in custom.values() for r in m["rules"])
    conntrack = any(r["path"] == "/config/plugin/network_problem.sh" for m in custom.values() for r in m["rules"])
    if fd:
        needed.add("/proc")
        expect(mounts["proc"]["mountPath"] == "/host/proc", "fd_check reads /host/proc")
    expect(set(host.values()) == needed, f"host paths {sorted(host.values())}, needed {sorted(needed)}")
    expect(pod.get("hostPID", False) == fd, f"hostPID {pod.get('hostPID')} only for fd_check")
    expect(pod.get("hostNetwork", False) == conntrack, f"hostNetwork {pod.get('hostNetwork')} only for network_problem_check")
    if conntrack:
        expect(pod.get("dnsPolicy") == "ClusterFirstWithHostNet", "cluster DNS on the host network")
    sc = c["securityContext"]
    expect(sc.get("readOnlyRootFilesystem") is True, "NPD: readOnlyRootFilesystem")
    expect(sc.get("privileged", False) == (kmsg or fd), f"privileged {sc.get('privileged')} exactly when /dev/kmsg or fd_check needs it")
    if not sc.get("privileged"):
        expect(sc.get("allowPrivilegeEscalation") is False and sc.get("capabilities", {}).get("drop") == ["ALL"], f"unprivileged NPD drops everything: {sc}")

    # RBAC: events create/patch, nodes/status patch (and get nodes when asked for), nothing more.
    sa = pod["serviceAccountName"]
    expect(sa != only(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"], "NPD has its own ServiceAccount")
    expect([d for d in npd_docs(docs) if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == sa], f"ServiceAccount {sa} rendered")
    role = only(npd_docs(docs), "ClusterRole")
    rules = [r for r in role["rules"] if r["resources"] != ["nodes"]]
    expect(rules == [
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
    ], f"NPD's ClusterRole {role['rules']}")
    for r in role["rules"]:
        if r["resources"] == ["nodes"]:
            expect(r == {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}, f"nodes rule {r}")
    crb = only(npd_docs(docs), "ClusterRoleBinding")
    expect(crb["roleRef"]["name"] == role["metadata"]["name"], "NPD's binding refers to its ClusterRole")
    expect(crb["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}], f"NPD's binding subject {crb['subjects']}")


def problem_reasons(monitors) -> set[str]:
    """The reasons of the problems monitors report: rule reasons (not the 'no problem' ones)."""
    return {r["reason"] for m in monitors for r in m["rules"]}


# --- eventer check ---------------------------------------------------------------------

WEBHOOK_ENV = {
    "LARK_WEBHOOK": "https://open.feishu.cn/open-apis/bot/v2/hook/{}",
    "SLACK_WEBHOOK": "https://hooks.slack.com/services/T0/B0/{}",
}


def test_pki(directory: Path) -> dict[str, Path]:
    """A CA and a client certificate it signed, made with openssl: the Kafka sink loads its
    TLS files when it starts (also under `eventer check`), so they must be real PEM."""
    def run(*argv: str) -> None:
        subprocess.run(["openssl", *argv], cwd=directory, check=True, capture_output=True, timeout=60)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=eventer test CA", "-days", "2")
    run("req", *ec, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=eventer")
    run("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "tls.crt", "-days", "2")
    return {name: directory / name for name in ("ca.crt", "tls.crt", "tls.key")}


def eventer_check(docs: list[dict], namespace: str, config_text: str | None = None) -> str:
    """Run `eventer check` on the rendered arguments; its output."""
    binary = os.environ.get("EVENTER_BIN")
    if not binary:
        return ""
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for name, entry in env(docs).items():
        if "value" in entry:
            environment[name] = str(entry["value"])
        elif "fieldRef" in entry.get("valueFrom", {}):
            environment[name] = namespace if entry["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace" else "eventer-0"
        else:
            # Webhook secrets are whole URLs, which eventer check validates as such.
            environment[name] = WEBHOOK_ENV.get(name, "{}").format(f"dummy-{name.lower()}")
    with tempfile.TemporaryDirectory() as tmp:
        # Secret volumes as the kubelet mounts them: a directory per mount, a file per item.
        mounts = secret_mounts(docs)
        pki = test_pki(Path(tmp)) if mounts else {}
        moved = {}
        for i, (mount_path, (_, files)) in enumerate(mounts.items()):
            directory = Path(tmp) / f"mount-{i}"
            directory.mkdir()
            for file in files:
                expect(file in pki, f"no test file for {file} of the Secret mounted at {mount_path}")
                (directory / file).write_bytes(pki[file].read_bytes())
            moved[mount_path + "/"] = f"{directory}/"
        argv = []
        for arg in args(docs):
            arg = arg.replace("$(POD_NAMESPACE)", namespace)  # Kubernetes' own expansion
            for mount_path, directory in moved.items():
                arg = arg.replace(mount_path, directory)
            if arg.startswith("--config=") and config_text is not None:
                path = Path(tmp) / "eventer.yaml"
                path.write_text(config_text)
                arg = f"--config={path}"
            argv.append(arg)
        proc = subprocess.run([binary, "check", *argv], env=environment, capture_output=True, text=True, timeout=60)
    expect(proc.returncode == 0, f"eventer check exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[:500]}")
    for value in environment.values():
        for dummy in re.findall(r"dummy-[a-z_]+", value):
            expect(dummy not in proc.stdout + proc.stderr, "eventer check printed a secret")
    return proc.stdout


# --- cases ----------------------------------------------------------------------------


ACK_DINGTALK = {
    "eventer": {
        "image": {"repository": "registry.example.com/acs/eventer", "tag": "v9.9.9", "pullPolicy": "Always"},
        "sinks": {
            "dingtalk": {
                "enabled": True,
                "level": "warning",
                "label": "c0ffee-cluster",
                "token": "t0k3n-ack-value",
                "monitorkinds": "Node,Pod",
                "monitornamespaces": "default,kube-system",
            }
        },
    }
}

ACK_SLS = {"eventer": {"sinks": {"sls": {"enabled": True, "project": "k8s-log4j", "logstore": "k8s-logstore"}}}}

EVERYTHING = {
    "eventer": {
        "sinks": {
            "dingtalk": {
                "enabled": True,
                "level": "Normal",
                "label": ["prod cluster", "team&ops"],
                "token": "t0k3n-everything",
                "secret": "SECsign-everything",
                "monitorkinds": ["Node"],
                "msgType": "markdown",
                "options": {
                    "reasons": "KernelOops,TaskHung",
                    "repeat_interval": "30m",
                    "max_bytes": 3145728,
                    "at_mobiles": ["13800000000", "13900000000"],
                    "timezone": "Asia/Shanghai",
                },
            },
            "sls": {
                "enabled": True,
                "project": "p1",
                "logstore": "events",
                "region": "cn-beijing",
                "internal": False,
                "topic": "k8s-event",
                "labels": {"cluster": "prod", "team": "infra"},
                "accessKeyId": "LTAIakid-everything",
                "accessKeySecret": "aksecret-everything",
            },
            "stdout": {"enabled": True, "format": "json"},
        },
        "extraSinks": ["stdout?level=Warning&exclude_reasons=Pulled"],
        "frequency": "10s",
        "shutdownTimeout": "20s",
        "verbosity": 2,
        "timezone": "Asia/Shanghai",
        "healthz": {"port": 9090},
    }
}

EXISTING_SECRET = {
    "eventer": {
        "existingSecret": "my-eventer-keys",
        "sinks": {
            "dingtalk": {"enabled": True, "signFromExistingSecret": True, "token": "ignored", "secret": "ignored"},
            "sls": {"enabled": True, "project": "p", "logstore": "l"},
        },
    }
}

SINGLE = {
    "eventer": {
        "replicas": 1,
        "leaderElection": {"enabled": False},
        "checkpoint": {"enabled": False},
        "sinks": {"stdout": {"enabled": True}},
    }
}

WEBHOOK_TEMPLATE = '{"msg_type":"text","content":{"text":"{{.Type}} {{.InvolvedObject.Kind}} {{.Reason}}: {{js .Message}}"}}'
WEBHOOK = {
    "eventer": {
        "sinks": {
            "webhook": {
                "enabled": True,
                "url": "https://open.feishu.cn/open-apis/bot/v2/hook/abc?x=1",
                "headers": {"Content-Type": "application/json", "X-Team": "a&b=c"},
                "template": WEBHOOK_TEMPLATE,
                "signSecret": "s1gn-webhook",
                "options": {"timeout": "5s", "kinds": ["Node", "Pod"]},
            }
        }
    }
}

CONFIG_FILE_TEXT = "source: kubernetes:https://kubernetes.default\nsinks:\n  - stdout?level=Warning\n"
CONFIG_FILE = {"eventer": {"config": CONFIG_FILE_TEXT, "source": ""}}

NAMED = {
    "eventer": {
        "leaderElection": {"leaseName": "my-lease"},
        "checkpoint": {"configMapName": "my-position"},
        "sinks": {"stdout": {"enabled": True}},
    },
    "serviceAccount": {"name": "custom-sa"},
}


# ACK's chart keys, given as `helm install --set` gives them: NPD with two of ACK's plugins next
# to the eventer keys, and the keys this chart accepts without using.
ACK_NPD = (
    "npd.enabled=true",
    "npd.image.repository=registry.cn-beijing.aliyuncs.com/acs/node-problem-detector,npd.image.tag=v0.6.3-16-g30dab97,npd.image.pullPolicy=Always",
    r"alibaba_cloud_plugins=fd_check\,network_problem_check",
    "eventer.image.repository=registry.example.com/acs/eventer,eventer.image.tag=v9.9.9,eventer.image.pullPolicy=IfNotPresent",
    "eventer.sinks.dingtalk.enabled=true,eventer.sinks.dingtalk.level=warning,eventer.sinks.dingtalk.label=20240601,eventer.sinks.dingtalk.token=t0k3n-npd",
    r"eventer.sinks.dingtalk.monitorkinds=Node,eventer.sinks.dingtalk.monitornamespaces=default\,kube-system",
    "eventer.sinks.sls.enabled=false,eventer.sinks.sls.project=k8s-log,eventer.sinks.sls.logstore=k8s-event",
    "eventer.sinks.eventbridge.enable=false,eventer.sinks.eventbridge.enabled=false",
    "plugin_settings.check_fd_warning_percentage=80,plugin_settings.inode_warning_percentage=80",
    "controller.regionId=cn-hangzhou,controller.clusterType=ManagedKubernetes,controller.clusterId=c0ffee,controller.clusterName=prod,controller.ramRoleType=restricted",
)

NPD_UNPRIVILEGED = {
    "npd": {"enabled": True, "monitors": {"kernel": False}, "hostPaths": {"localtime": ""}},
    "alibaba_cloud_plugins": "",
    "eventer": {"sinks": {"stdout": {"enabled": True}}},
}

INODES_SCRIPT = "#!/bin/sh\n# inodes of / above 80%\nexit 0\n"
NPD_OWN = {
    "npd": {
        "enabled": True,
        "monitors": {"kernel": False, "containerRuntime": False, "systemd": False},
        "rbac": {"getNodes": True},
        "image": {"repository": "registry.k8s.io/node-problem-detector/node-problem-detector", "tag": "v0.8.21"},
        "systemLogMonitors": {
            "containerd": {
                "plugin": "journald",
                "pluginConfig": {"source": "containerd"},
                "logPath": "/var/log/journal",
                "lookback": "5m",
                "source": "containerd-monitor",
                "conditions": [],
                "rules": [{"type": "temporary", "reason": "ContainerdPanic", "pattern": "panic: .*"}],
            }
        },
        "customPluginMonitors": {
            "inodes": {
                "plugin": "custom",
                "pluginConfig": {"invoke_interval": "60s", "timeout": "10s"},
                "source": "inodes-custom-plugin-monitor",
                "conditions": [{"type": "InodesPressure", "reason": "NodeHasNoInodesPressure", "message": "inodes are fine"}],
                "rules": [{"type": "permanent", "condition": "InodesPressure", "reason": "NodeHasInodesPressure", "path": "/etc/npd/plugin/check_inodes.sh", "timeout": "5s"}],
            }
        },
        "pluginScripts": {"check_inodes.sh": INODES_SCRIPT},
    },
    "alibaba_cloud_plugins": "",
    "eventer": {"sinks": {"stdout": {"enabled": True}}},
}


def ack_npd(docs):
    c = npd_container(docs)
    expect(c["image"] == "registry.cn-beijing.aliyuncs.com/acs/node-problem-detector:v0.6.3-16-g30dab97", f"NPD image {c['image']}")
    expect(c["imagePullPolicy"] == "Always", "NPD pullPolicy")
    log, custom = npd_monitors(docs)
    expect(sorted(m["source"] for m in log.values()) == ["docker-monitor", "kernel-monitor", "systemd-monitor"], f"standard monitors {sorted(log)}")
    expect(sorted(m["source"] for m in custom.values()) == ["fd-custom-plugin-monitor", "network-custom-plugin-monitor"], f"ACK's plugins {sorted(custom)}")
    paths = sorted(r["path"] for m in custom.values() for r in m["rules"])
    expect(paths == ["/config/plugin/check_fd.sh", "/config/plugin/network_problem.sh"], f"the image's scripts {paths}")
    fd = [m for m in custom.values() if m["source"] == "fd-custom-plugin-monitor"][0]
    expect(fd["conditions"][0]["type"] == "FDPressure" and fd["rules"][0]["reason"] == "NodeHasFDPressure", "fd_check sets FDPressure")
    expect(kinds(npd_docs(docs)) == ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "ServiceAccount"], f"NPD objects {kinds(npd_docs(docs))}")
    expect(npd_container(docs)["securityContext"].get("privileged") is True, "privileged for /dev/kmsg")
    # The eventer half of the same values.
    expect(container(docs)["image"] == "registry.example.com/acs/eventer:v9.9.9", f"eventer image {container(docs)['image']}")
    _, q = one_sink(docs, "dingtalk")
    expect(q["kinds"] == ["Node"] and q["namespaces"] == ["default,kube-system"] and q["label"] == ["20240601"], f"dingtalk (a number from --set as the label) {q}")
    expect(not sinks(docs, "sls"), "SLS disabled")


def npd_unprivileged(docs):
    log, custom = npd_monitors(docs)
    expect(sorted(m["plugin"] for m in log.values()) == ["journald", "journald"] and not custom, f"monitors {sorted(log)} {sorted(custom)}")
    sc = npd_container(docs)["securityContext"]
    expect(not sc.get("privileged") and sc["capabilities"]["drop"] == ["ALL"], f"unprivileged without /dev/kmsg: {sc}")
    volumes = [v["hostPath"]["path"] for v in npd_pod(docs)["volumes"] if "hostPath" in v]
    expect(volumes == ["/var/log/journal"], f"host paths {volumes} (no /etc/localtime when it is \"\")")


def npd_own(docs):
    log, custom = npd_monitors(docs)
    expect(list(log) == ["/etc/npd/user-containerd.json"] and list(custom) == ["/etc/npd/user-inodes.json"], f"own monitors {list(log)} {list(custom)}")
    cm = only(npd_docs(docs), "ConfigMap")
    expect(cm["data"]["plugin-check_inodes.sh"] == INODES_SCRIPT.strip() + "\n", "the script as given")
    rules = only(npd_docs(docs), "ClusterRole")["rules"]
    expect({"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]} in rules, "get nodes for a newer NPD")
    expect(npd_container(docs)["image"].endswith(":v0.8.21"), "image")


def no_npd(docs):
    expect(not npd_docs(docs), f"no NPD objects by default: {kinds(npd_docs(docs))}")


# Real kernel and systemd log lines (the kernel's printk formats; the first is the test line of
# ACK's chart README), and what NPD makes of them: NPD matches `pattern` + `\z` against the end
# of its buffer of recent lines.
LOG_LINES = [
    ("kernel-monitor.json", "kernel: BUG: unable to handle kernel NULL pointer dereference at TESTING", {"KernelOops"}),
    ("kernel-monitor.json", "Out of memory: Killed process 4321 (stress) total-vm:1030552kB, anon-rss:1016344kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:2036kB oom_score_adj:1000", {"OOMKilling"}),
    ("kernel-monitor.json", "Killed process 4321 (stress) total-vm:1030552kB, anon-rss:1016344kB, file-rss:4kB", {"OOMKilling"}),
    ("kernel-monitor.json", "INFO: task jbd2/vda1-8:312 blocked for more than 120 seconds.", {"TaskHung"}),
    ("kernel-monitor.json", "INFO: task docker:1234 blocked for more than 120 seconds.", {"TaskHung", "DockerHung"}),
    ("kernel-monitor.json", "EXT4-fs (vda1): Remounting filesystem read-only", {"FilesystemIsReadOnly"}),
    ("kernel-monitor.json", "unregister_netdevice: waiting for eth0 to become free. Usage count = 1", {"UnregisterNetDevice"}),
    ("kernel-monitor.json", "XFS (vdb): Corruption of in-memory data detected.  Shutting down filesystem", {"XfsHasShutdown"}),
    ("kernel-monitor.json", "EXT4-fs error (device vda1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0", {"Ext4Error"}),
    ("kernel-monitor.json", "virtio_net virtio0 eth0: link up", set()),
    ("systemd-monitor.json", "Started Kubernetes kubelet.", {"KubeletStart"}),
    ("systemd-monitor.json", "Started kubelet.service - kubelet: The Kubernetes Node Agent.", {"KubeletStart"}),
    ("systemd-monitor.json", "Starting containerd.service - containerd container runtime...", {"ContainerdStart"}),
]


def chart_monitor(name: str) -> dict:
    return json.loads((CHART / "files" / "npd" / name).read_text())


def schema_paths(schema: dict, root: dict, path: str, value, missing: list[str]) -> None:
    """Every key of a values.yaml value is a property the schema names (not just tolerates),
    down to the maps and Kubernetes fields the schema passes through (no `properties`)."""
    while "$ref" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    if not isinstance(value, dict) or "properties" not in schema:
        return
    for key, sub in value.items():
        props = schema.get("properties", {})
        if key not in props:
            missing.append(f"{path}{key}")
        else:
            schema_paths(props[key], root, f"{path}{key}.", sub, missing)




def guide_command() -> tuple[str, ...]:
    """The --set values of the one command in docs/node-problem-detector.md, placeholders filled."""
    text = DOCS_NPD.read_text()
    section = text[text.index("## Deploy both"):]
    start = section.index("```sh\n") + 6
    command = section[start:section.index("\n```", start)].replace("\\\n", " ")
    command = re.sub(r"<([^>]+)>", lambda m: "ph-" + re.sub(r"[^A-Za-z0-9]+", "-", m.group(1)), command)
    words = shlex.split(command)
    expect(words[:3] == ["helm", "install", "eventer"], f"the guide's command: {words[:3]}")
    return tuple(words[i + 1] for i, w in enumerate(words) if w == "--set")


def guide(docs):
    expect(npd_docs(docs), "NPD deployed")
    _, q = one_sink(docs, "dingtalk")
    log, custom = npd_monitors(docs)
    reported = problem_reasons([*log.values(), *custom.values()]) - {"KubeletStart", "DockerStart", "ContainerdStart"}
    expect(q["kinds"] == ["Node"] and q["level"] == ["normal"], f"kinds and level {q}")
    expect(reported <= set(q["reasons"][0].split(",")), f"reasons {q['reasons']} miss some of {sorted(reported)}")

CHAT = {
    "eventer": {
        "sinks": {
            "lark": {
                "enabled": True,
                "webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/lark-t0k3n",
                "secret": "lark-s3cret",
                "label": ["prod", "team&ops"],
                "msgType": "interactive",
                "options": {"timezone": "Asia/Shanghai", "kinds": "Pod,Node"},
            },
            "slack": {
                "enabled": True,
                "webhook": "https://hooks.slack.com/services/T0/B0/slack-s3cret",
                "label": "prod",
                "mention": ["here", "U01ABC"],
                "level": "normal",
            },
        }
    }
}


def case(name: str, values: dict, extra=None, config_text: str | None = None, check_says: tuple[str, ...] = ()) -> None:
    docs: list[dict] = []

    @check(f"{name}: helm lint (strict) has no errors or warnings")
    def _():
        problems = lint(values)
        expect(not problems, "; ".join(problems))

    @check(f"{name}: renders, and the invariants hold")
    def _():
        docs.extend(render(values))
        invariants(eventer_docs(docs), NAMESPACE)
        for d in docs:
            expect(d["kind"] in ("ClusterRole", "ClusterRoleBinding") or d["metadata"].get("namespace") == NAMESPACE, f"{d['kind']} {d['metadata']['name']} not in {NAMESPACE}")
        if npd_docs(docs):
            npd_invariants(docs, NAMESPACE)

    if extra:

        @check(f"{name}: the values land where they should")
        def _():
            expect(docs, "nothing rendered")
            extra(docs)

    if os.environ.get("EVENTER_BIN"):

        @check(f"{name}: eventer check accepts the rendered arguments")
        def _():
            expect(docs, "nothing rendered")
            out = eventer_check(docs, NAMESPACE, config_text)
            for line in check_says:
                expect(line in out, f"eventer check does not say {line!r}: {out}")


def ack_dingtalk(docs):
    c = container(docs)
    expect(c["image"] == "registry.example.com/acs/eventer:v9.9.9", f"image {c['image']}")
    expect(c["imagePullPolicy"] == "Always", "pullPolicy")
    target, q = one_sink(docs, "dingtalk")
    expect(target == "https://oapi.dingtalk.com/robot/send", f"webhook {target}")
    expect(q["access_token"] == ["${DINGTALK_TOKEN}"], f"access_token {q.get('access_token')}")
    expect(q["level"] == ["warning"], f"level {q.get('level')}")
    expect(q["label"] == ["c0ffee-cluster"], f"label {q.get('label')}")
    expect(q["kinds"] == ["Node,Pod"], f"kinds (monitorkinds) {q.get('kinds')}")
    expect(q["namespaces"] == ["default,kube-system"], f"namespaces (monitornamespaces) {q.get('namespaces')}")
    expect("sign" not in q and "msg_type" not in q, f"unsigned text by default: {q}")
    expect(not sinks(docs, "sls"), "SLS off by default")
    expect(secret_data(docs) == {"dingtalk-token": "t0k3n-ack-value"}, f"Secret data {secret_data(docs)}")
    e = env(docs)
    expect(e["DINGTALK_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": FULLNAME, "key": "dingtalk-token"}, "token from the chart's Secret")
    expect("DINGTALK_SECRET" not in e and "AccessKeyId" not in e, "no unused secret env")
    a = args(docs)
    expect(flag(docs, "source") == ["kubernetes:https://kubernetes.default"], f"source {flag(docs, 'source')}")
    expect(only(docs, "Deployment")["spec"]["replicas"] == 2, "two replicas by default")
    expect(flag(docs, "checkpoint") == [f"configmap:{NAMESPACE}/{FULLNAME}-checkpoint"], f"checkpoint {flag(docs, 'checkpoint')}")
    expect(flag(docs, "leader-elect-lease-name") == [FULLNAME], "lease name")
    expect("--leader-elect" in a, "--leader-elect")
    expect(kinds(docs) == sorted(["ClusterRole", "ClusterRoleBinding", "Deployment", "PodDisruptionBudget", "Role", "RoleBinding", "Secret", "Service", "ServiceAccount"]), f"objects {kinds(docs)}")


def ack_sls(docs):
    target, q = one_sink(docs, "sls")
    expect(target == "", f"endpoint target {target!r}")
    expect(q["project"] == ["k8s-log4j"] and q["logStore"] == ["k8s-logstore"], f"project/logStore {q}")
    expect(q.get("internal") == ["true"], f"internal {q.get('internal')}")
    expect(not sinks(docs, "dingtalk"), "DingTalk off by default")
    expect(not [d for d in docs if d["kind"] == "Secret"], "no Secret without secrets (RAM role)")
    expect("AccessKeyId" not in env(docs), "no AccessKey env: the RAM role is used")
    expect("ALIBABA_CLOUD_ROLE_ARN" not in env(docs), "no RRSA unless enabled")


ACK_SLS_RRSA = {
    "eventer": {
        "sinks": {
            "sls": {
                "enabled": True,
                "project": "k8s-log4j",
                "logstore": "k8s-logstore",
                "rrsa": {
                    "enabled": True,
                    "roleArn": "acs:ram::1234567890:role/eventer-sls",
                    "oidcProviderArn": "acs:ram::1234567890:oidc-provider/ack-rrsa-c0ffee",
                    "stsEndpoint": "sts-vpc.cn-hangzhou.aliyuncs.com",
                },
            }
        }
    }
}


def ack_sls_rrsa(docs):
    sa = only(docs, "ServiceAccount")
    role = sa["metadata"].get("annotations", {}).get("pod-identity.alibabacloud.com/role-name")
    expect(role == "eventer-sls", f"service account role annotation {role!r}")
    e = env(docs)
    expect(e["ALIBABA_CLOUD_ROLE_ARN"].get("value") == "acs:ram::1234567890:role/eventer-sls", "role ARN env")
    expect(e["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"].get("value") == "acs:ram::1234567890:oidc-provider/ack-rrsa-c0ffee", "provider ARN env")
    expect(e["ALIBABA_CLOUD_STS_ENDPOINT"].get("value") == "sts-vpc.cn-hangzhou.aliyuncs.com", "STS endpoint env")
    token_file = e["ALIBABA_CLOUD_OIDC_TOKEN_FILE"].get("value", "")
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    volume = next((v for v in pod.get("volumes", []) if v["name"] == "rrsa-oidc-token"), None)
    expect(volume is not None, "a projected token volume")
    source = volume["projected"]["sources"][0]["serviceAccountToken"]
    expect(source["audience"] == "sts.aliyuncs.com" and source["expirationSeconds"] >= 600, f"token {source}")
    mount = next((m for m in container(docs).get("volumeMounts", []) if m["name"] == "rrsa-oidc-token"), None)
    expect(mount is not None and token_file == f"{mount['mountPath']}/{source['path']}", f"token file {token_file} mounted by {mount}")
    expect("AccessKeyId" not in e, "no AccessKey env with RRSA")


def everything(docs):
    _, q = one_sink(docs, "dingtalk")
    expect(q["sign"] == ["${DINGTALK_SECRET}"], f"sign {q.get('sign')}")
    expect(q["label"] == ["prod cluster", "team&ops"], f"labels {q.get('label')}")
    expect(q["level"] == ["Normal"] and q["kinds"] == ["Node"] and q["msg_type"] == ["markdown"], f"{q}")
    expect(q["reasons"] == ["KernelOops,TaskHung"] and q["repeat_interval"] == ["30m"], f"options {q}")
    expect(q["max_bytes"] == ["3145728"], f"whole numbers stay whole: {q.get('max_bytes')}")
    expect(q["at_mobiles"] == ["13800000000", "13900000000"], f"list options repeat: {q.get('at_mobiles')}")
    expect(q["timezone"] == ["Asia/Shanghai"], f"timezone {q.get('timezone')}")
    _, s = one_sink(docs, "sls")
    expect(s["regionId"] == ["cn-beijing"] and s["internal"] == ["false"] and s["topic"] == ["k8s-event"], f"{s}")
    expect(s["label"] == ["cluster,prod", "team,infra"], f"sls labels {s.get('label')}")
    expect("accessKeyId" not in s and "accessKeySecret" not in s, "AccessKey in env, not in the URI")
    expect(flag(docs, "sink")[2:] == ["stdout?format=json", "stdout?level=Warning&exclude_reasons=Pulled"], f"stdout and extra sinks {flag(docs, 'sink')}")
    data = secret_data(docs)
    expect(data == {"dingtalk-token": "t0k3n-everything", "dingtalk-secret": "SECsign-everything", "sls-access-key-id": "LTAIakid-everything", "sls-access-key-secret": "aksecret-everything"}, f"Secret data {data}")
    e = env(docs)
    expect(e["AccessKeyId"]["valueFrom"]["secretKeyRef"] == {"name": FULLNAME, "key": "sls-access-key-id"}, "AccessKeyId from the chart's Secret")
    expect(e["TZ"]["value"] == "Asia/Shanghai", "TZ")
    for f, v in (("frequency", "10s"), ("shutdown-timeout", "20s"), ("healthz-port", "9090")):
        expect(flag(docs, f) == [v], f"--{f} {flag(docs, f)}")
    expect("-vv" in args(docs), "verbosity 2 is -vv")
    service = only(docs, "Service")
    expect(service["spec"]["ports"][0]["port"] == 9090, "Service on the health port")


def existing_secret(docs):
    expect(not [d for d in docs if d["kind"] == "Secret"], "no chart Secret with existingSecret")
    e = env(docs)
    for name, key in (("DINGTALK_TOKEN", "dingtalk-token"), ("DINGTALK_SECRET", "dingtalk-secret")):
        ref = e[name]["valueFrom"]["secretKeyRef"]
        expect(ref["name"] == "my-eventer-keys" and ref["key"] == key and not ref.get("optional"), f"{name} {ref}")
    for name in ("AccessKeyId", "AccessKeySecret"):
        ref = e[name]["valueFrom"]["secretKeyRef"]
        expect(ref["name"] == "my-eventer-keys" and ref.get("optional") is True, f"{name} optional {ref}")
    _, q = one_sink(docs, "dingtalk")
    expect(q["sign"] == ["${DINGTALK_SECRET}"], "signed with the existing Secret's key")
    text = yaml.safe_dump(docs)
    expect("ignored" not in text, "token/secret values are not used with existingSecret")


def webhook(docs):
    target, q = one_sink(docs, "webhook")
    expect(target == "https://open.feishu.cn/open-apis/bot/v2/hook/abc", f"url {target}")
    expect(q["x"] == ["1"], f"the URL's own parameter {q}")
    expect(q["method"] == ["POST"] and q["level"] == ["warning"], f"method and level {q}")
    expect(sorted(q["header"]) == ["Content-Type=application/json", "X-Team=a&b=c"], f"headers {q['header']}")
    expect(q["sign_secret"] == ["${WEBHOOK_SIGN_SECRET}"], "signed from the Secret")
    expect(q["kinds"] == ["Node", "Pod"] and q["timeout"] == ["5s"], f"options {q}")
    name = f"{FULLNAME}-webhook-body"
    expect(q["custom_body_configmap"] == [name] and q["custom_body_configmap_namespace"] == [NAMESPACE], f"configmap {q}")
    cm = [d for d in docs if d["kind"] == "ConfigMap"]
    expect(len(cm) == 1 and cm[0]["metadata"]["name"] == name and cm[0]["data"]["content"] == WEBHOOK_TEMPLATE, f"ConfigMap {cm}")
    rules = only(docs, "Role")["rules"]
    expect({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [name], "verbs": ["get", "list", "watch"]} in rules, f"rules {rules}")
    expect(secret_data(docs) == {"webhook-sign-secret": "s1gn-webhook"}, f"Secret data {secret_data(docs)}")
    expect("s1gn-webhook" not in yaml.safe_dump([d for d in docs if d["kind"] != "Secret"]), "the secret only in the Secret")


def single(docs):
    a = args(docs)
    expect(only(docs, "Deployment")["spec"]["replicas"] == 1, "one replica")
    expect(not any(x.startswith("--leader-elect") for x in a), f"no leader election: {a}")
    expect(not flag(docs, "checkpoint"), "no checkpoint")
    expect(not [d for d in docs if d["kind"] in ("Role", "RoleBinding", "PodDisruptionBudget", "Secret")], f"objects {kinds(docs)}")
    expect(flag(docs, "sink") == ["stdout"], f"sinks {flag(docs, 'sink')}")


def config_file(docs):
    cm = [d for d in docs if d["kind"] == "ConfigMap"]
    expect(len(cm) == 1 and cm[0]["data"]["eventer.yaml"] == CONFIG_FILE_TEXT, f"ConfigMap {cm}")
    expect(flag(docs, "config") == ["/etc/eventer/eventer.yaml"], f"--config {flag(docs, 'config')}")
    expect(not flag(docs, "source") and not flag(docs, "sink"), "source and sinks from the file")
    c = container(docs)
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    expect("/etc/eventer" in mounts and mounts["/etc/eventer"].get("readOnly"), f"mounted read-only: {mounts}")
    volumes = only(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    expect(volumes[0]["configMap"]["name"] == cm[0]["metadata"]["name"], "volume from the ConfigMap")


def named(docs):
    expect(flag(docs, "leader-elect-lease-name") == ["my-lease"], "lease name")
    expect(flag(docs, "checkpoint") == [f"configmap:{NAMESPACE}/my-position"], "checkpoint name")
    expect(only(docs, "ServiceAccount")["metadata"]["name"] == "custom-sa", "service account name")


SERVICE_MONITOR = {
    "eventer": {
        "sinks": {"stdout": {"enabled": True}},
        "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kube-prometheus-stack"}},
    },
}


def service_monitor(docs):
    sm = only(docs, "ServiceMonitor")
    expect(sm["apiVersion"] == "monitoring.coreos.com/v1", f"apiVersion {sm['apiVersion']}")
    expect(sm["metadata"]["namespace"] == NAMESPACE, "in the release's namespace")
    expect(sm["metadata"]["labels"].get("release") == "kube-prometheus-stack", f"labels {sm['metadata']['labels']}")
    service = only(docs, "Service")
    selector = sm["spec"]["selector"]["matchLabels"]
    expect(selector.items() <= service["metadata"]["labels"].items(), f"selects the metrics Service: {selector}")
    expect(sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}, f"{sm['spec']['namespaceSelector']}")
    port = service["spec"]["ports"][0]["name"]
    expect(sm["spec"]["endpoints"] == [{"port": port, "path": "/metrics", "interval": "15s"}], f"endpoints {sm['spec']['endpoints']}")
WECOM = {
    "eventer": {
        "sinks": {
            "wecom": {
                "enabled": True,
                "key": "wecom-key-value",
                "label": ["prod", "team&ops"],
                "msgType": "markdown",
                "mentionedList": ["ops", "@all"],
                "options": {"timezone": "Asia/Shanghai", "repeat_interval": "30m"},
            },
            "wechat": {
                "enabled": True,
                "corpId": "ww0123456789",
                "agentId": 1000002,
                "corpSecret": "wechat-secret-value",
                "toUser": "zhangsan,lisi",
                "endpoint": "https://wecom.corp.example",
                "level": "normal",
                "label": "prod",
            },
        },
    }
}


def wecom(docs):
    target, q = one_sink(docs, "wecom")
    expect(target == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send", f"webhook {target}")
    expect(q["key"] == ["${WECOM_KEY}"], f"key {q.get('key')}")
    expect(q["label"] == ["prod", "team&ops"] and q["msg_type"] == ["markdown"], f"{q}")
    expect(q["mentioned_list"] == ["ops,@all"] and q["level"] == ["warning"], f"{q}")
    expect(q["timezone"] == ["Asia/Shanghai"] and q["repeat_interval"] == ["30m"], f"{q}")
    target, q = one_sink(docs, "wechat")
    expect(target == "", f"wechat target {target}")
    expect(q["corp_id"] == ["ww0123456789"] and q["agent_id"] == ["1000002"], f"{q}")
    expect(q["corp_secret"] == ["${WECHAT_CORP_SECRET}"] and q["to_user"] == ["zhangsan,lisi"], f"{q}")
    expect(q["endpoint"] == ["https://wecom.corp.example"] and q["level"] == ["normal"], f"{q}")
    data = secret_data(docs)
    expect(data == {"wecom-key": "wecom-key-value", "wechat-corp-secret": "wechat-secret-value"}, f"Secret data {data}")
    e = env(docs)
    expect(e["WECOM_KEY"]["valueFrom"]["secretKeyRef"] == {"name": FULLNAME, "key": "wecom-key"}, "key from the chart's Secret")
    ref = e["WECHAT_CORP_SECRET"]["valueFrom"]["secretKeyRef"]
    expect(ref == {"name": FULLNAME, "key": "wechat-corp-secret"}, "corp secret from the chart's Secret")
    expect("DINGTALK_TOKEN" not in e, "no unused secret env")
def chat(docs):
    target, q = one_sink(docs, "lark")
    expect(target == "${LARK_WEBHOOK}", f"lark target {target}")
    expect(q["sign"] == ["${LARK_SECRET}"] and q["msg_type"] == ["interactive"], f"{q}")
    expect(q["label"] == ["prod", "team&ops"] and q["kinds"] == ["Pod,Node"] and q["level"] == ["warning"], f"{q}")
    target, q = one_sink(docs, "slack")
    expect(target == "${SLACK_WEBHOOK}", f"slack target {target}")
    expect(q["mention"] == ["here,U01ABC"] and q["level"] == ["normal"] and q["label"] == ["prod"], f"{q}")
    data = secret_data(docs)
    expect(data == {"lark-webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/lark-t0k3n", "lark-secret": "lark-s3cret", "slack-webhook": "https://hooks.slack.com/services/T0/B0/slack-s3cret"}, f"Secret data {data}")
    e = env(docs)
    for name, key in (("LARK_WEBHOOK", "lark-webhook"), ("LARK_SECRET", "lark-secret"), ("SLACK_WEBHOOK", "slack-webhook")):
        expect(e[name]["valueFrom"]["secretKeyRef"] == {"name": FULLNAME, "key": key}, f"{name} from the chart's Secret")


FAILURES = [
    ("a ServiceMonitor without the Service", {"eventer": {"sinks": {"stdout": {"enabled": True}}, "serviceMonitor": {"enabled": True}}, "metrics": {"service": {"enabled": False}}}, "eventer.serviceMonitor.enabled needs metrics.service.enabled"),
    ("no sink", {}, "no sink"),
    ("DingTalk without a token", {"eventer": {"sinks": {"dingtalk": {"enabled": True}}}}, "eventer.sinks.dingtalk.token is required"),
    ("SLS without a logstore", {"eventer": {"sinks": {"sls": {"enabled": True, "project": "p"}}}}, "eventer.sinks.sls.project and eventer.sinks.sls.logstore are required"),
    ("RRSA without a role", {"eventer": {"sinks": {"sls": {"enabled": True, "project": "p", "logstore": "l", "rrsa": {"enabled": True}}}}}, "roleArn and oidcProviderArn are required"),
    ("half an AccessKey pair", {"eventer": {"sinks": {"sls": {"enabled": True, "project": "p", "logstore": "l", "accessKeyId": "x"}}}}, "set both accessKeyId and accessKeySecret"),
    ("two replicas without leader election", {"eventer": {"leaderElection": {"enabled": False}, "sinks": {"stdout": {"enabled": True}}}}, "needs eventer.leaderElection.enabled"),
    ("no source", {"eventer": {"source": "", "sinks": {"stdout": {"enabled": True}}}}, "eventer.source is empty"),
    ("Lark without a webhook", {"eventer": {"sinks": {"lark": {"enabled": True}}}}, "eventer.sinks.lark.webhook is required"),
    ("Slack without a webhook", {"eventer": {"sinks": {"slack": {"enabled": True}}}}, "eventer.sinks.slack.webhook is required"),
    ("a webhook among the options", {"eventer": {"sinks": {"slack": {"enabled": True, "webhook": "x", "options": {"webhook": "leak"}}}}}, "secrets do not belong"),
    ("a token among the options", {"eventer": {"sinks": {"dingtalk": {"enabled": True, "token": "x", "options": {"access_token": "leak"}}}}}, "secrets do not belong"),
    ("webhook without a URL", {"eventer": {"sinks": {"webhook": {"enabled": True}}}}, "eventer.sinks.webhook.url is required"),
    ("a webhook secret among the options", {"eventer": {"sinks": {"webhook": {"enabled": True, "url": "https://h/x", "options": {"sign_secret": "leak"}}}}}, "secrets do not belong"),
    # Given as `--set` gives them.
    ("a misspelt key", ("eventer.sinks.dingtalk.levle=Warning",), "additional properties 'levle' not allowed"),
    ("a misspelt NPD key", ("npd.enabled=true,npd.monitors.kernal=false",), "additional properties 'kernal' not allowed"),
    ("a misspelt top-level key", ("alibaba_cloud_plugin=fd_check",), "additional properties 'alibaba_cloud_plugin' not allowed"),
    ("a value of the wrong type", ("npd.enabled=yes",), "/npd/enabled"),
    ("an ACK plugin without a script in the image", ("npd.enabled=true,alibaba_cloud_plugins=ntp_check,eventer.sinks.stdout.enabled=true",), 'alibaba_cloud_plugins: "ntp_check" has no working script'),
    ("NPD without a monitor", ("npd.enabled=true,npd.monitors.kernel=false,npd.monitors.containerRuntime=false,npd.monitors.systemd=false,alibaba_cloud_plugins=,eventer.sinks.stdout.enabled=true",), "npd.enabled with no monitor"),
    ("kube-eventer's image, ACK's default", ("eventer.image.repository=registry.cn-hangzhou.aliyuncs.com/acs/eventer,eventer.image.tag=v1.6.0-4c4c66c-aliyun,eventer.sinks.stdout.enabled=true",), "is kube-eventer's image"),
    ("kube-eventer's EventBridge sink", ("eventer.sinks.eventbridge.enable=true,eventer.sinks.stdout.enabled=true",), "eventer has no EventBridge sink"),
    ("a custom plugin monitor not in NPD's format", {"npd": {"enabled": True, "customPluginMonitors": {"x": {"plugin": "custom", "source": "x", "rules": [{"type": "temp", "reason": "R", "path": "/p"}]}}}}, "/npd/customPluginMonitors/x/rules/0/type"),
    ("WeCom robot without a key", {"eventer": {"sinks": {"wecom": {"enabled": True}}}}, "eventer.sinks.wecom.key is required"),
    ("a WeCom key among the options", {"eventer": {"sinks": {"wecom": {"enabled": True, "key": "x", "options": {"key": "leak"}}}}}, "secrets do not belong"),
    ("WeCom app without its secret", {"eventer": {"sinks": {"wechat": {"enabled": True, "corpId": "ww1", "agentId": 1}}}}, "eventer.sinks.wechat.corpSecret is required"),
    ("WeCom app without a corp id", {"eventer": {"sinks": {"wechat": {"enabled": True, "corpSecret": "s", "agentId": 1}}}}, "eventer.sinks.wechat.corpId and eventer.sinks.wechat.agentId are required"),
]


# --- Kafka and Elasticsearch ------------------------------------------------------------

KAFKA = {
    "eventer": {
        "livenessTimeout": "10m",
        "sinks": {
            "kafka": {
                "enabled": True,
                "brokers": ["kafka-0.kafka:9093", "10.0.0.2:9093"],
                "topic": "k8s-events",
                "compression": "zstd",
                "format": "event",
                "partitionBy": "none",
                "user": "eventer",
                "password": "kafka-pa55word",
                "mechanism": "SCRAM-SHA-512",
                "tls": True,
                "tlsSecret": {"name": "kafka-client-tls", "cert": "tls.crt", "key": "tls.key"},
                "insecureSkipVerify": True,
                "options": {"level": "Warning", "timeout": "1m", "kinds": ["Pod", "Node"]},
            }
        },
    }
}

KAFKA_TLS = "/etc/eventer-tls/kafka"


def kafka(docs):
    expect(flag(docs, "sink") == [
        "kafka:?brokers=kafka-0.kafka:9093&brokers=10.0.0.2:9093&eventstopic=k8s-events&compression=zstd&format=event"
        "&partition_by=none&user=eventer&password=${KAFKA_PASSWORD}&mechanism=SCRAM-SHA-512&tls=true"
        f"&cacert={KAFKA_TLS}/ca.crt&cert={KAFKA_TLS}/tls.crt&key={KAFKA_TLS}/tls.key&insecuressl=true"
        "&kinds=Pod&kinds=Node&level=Warning&timeout=1m"
    ], f"sinks {flag(docs, 'sink')}")
    expect(secret_data(docs) == {"kafka-password": "kafka-pa55word"}, f"Secret data {secret_data(docs)}")
    e = env(docs)
    expect(e["KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": FULLNAME, "key": "kafka-password"}, "password from the chart's Secret")
    expect(secret_mounts(docs) == {KAFKA_TLS: ("kafka-client-tls", {"ca.crt", "tls.crt", "tls.key"})}, f"TLS mounts {secret_mounts(docs)}")
    volume = only(docs, "Deployment")["spec"]["template"]["spec"]["volumes"][0]["secret"]
    items = {i["key"]: i["path"] for i in volume["items"]}
    expect(items == {"ca.crt": "ca.crt", "tls.crt": "tls.crt", "tls.key": "tls.key"}, f"items {items}")
    expect(flag(docs, "liveness-timeout") == ["10m"], f"--liveness-timeout {flag(docs, 'liveness-timeout')}")


# Another Secret's own key names, a CA only, no SASL.
KAFKA_CA_ONLY = {
    "eventer": {
        "sinks": {"kafka": {"enabled": True, "brokers": ["b-1.msk.example.com:9094"], "tlsSecret": {"name": "msk-ca", "ca": "root-ca.pem"}}},
    }
}


def kafka_ca_only(docs):
    expect(flag(docs, "sink") == [f"kafka:?brokers=b-1.msk.example.com:9094&cacert={KAFKA_TLS}/ca.crt"], f"sinks {flag(docs, 'sink')}")
    volume = only(docs, "Deployment")["spec"]["template"]["spec"]["volumes"][0]["secret"]
    expect(volume == {"secretName": "msk-ca", "items": [{"key": "root-ca.pem", "path": "ca.crt"}]}, f"volume {volume}")
    expect(not [d for d in docs if d["kind"] == "Secret"] and "KAFKA_PASSWORD" not in env(docs), "no password without a user")
    expect(not flag(docs, "liveness-timeout"), "eventer's own liveness timeout by default")


def chart_example(guide: Path) -> dict:
    """The values of the Helm chart example of a sink's guide (the YAML block after "With the Helm chart")."""
    text = guide.read_text()
    section = text[text.index("With the Helm chart"):]
    start = section.index("```yaml\n") + 8
    return yaml.safe_load(section[start:section.index("\n```", start)])


def kafka_guide(docs):
    expect(flag(docs, "sink") == ["kafka:?brokers=kafka-0.kafka:9092&brokers=kafka-1.kafka:9092&eventstopic=k8s-events&compression=lz4"], f"sinks {flag(docs, 'sink')}")
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    expect("volumes" not in pod and "KAFKA_PASSWORD" not in env(docs), "no TLS files, no password")


ELASTICSEARCH = {
    "eventer": {
        "sinks": {
            "elasticsearch": {
                "enabled": True,
                "nodes": ["https://es-0.logging:9200", "https://es-1.logging:9200/"],
                "index": "k8s",
                "useNamespace": True,
                "ver": 8,
                "user": "elastic",
                "password": "es-pa55word",
                "pipeline": "events",
                "clusterName": "prod cluster",
                "options": {"create_index": False, "maxBatchEvents": 2000, "exclude_reasons": "Pulled,Created"},
            }
        },
    }
}


def elasticsearch(docs):
    expect(flag(docs, "sink") == [
        "elasticsearch:?nodes=https://es-0.logging:9200&nodes=https://es-1.logging:9200/&index=k8s&use_namespace=true&ver=8"
        "&esUserName=elastic&esUserSecret=${ES_PASSWORD}&pipeline=events&cluster_name=prod+cluster"
        "&create_index=false&exclude_reasons=Pulled%2CCreated&maxBatchEvents=2000"
    ], f"sinks {flag(docs, 'sink')}")
    expect(secret_data(docs) == {"elasticsearch-password": "es-pa55word"}, f"Secret data {secret_data(docs)}")
    e = env(docs)
    expect(e["ES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": FULLNAME, "key": "elasticsearch-password"}, "password from the chart's Secret")
    expect("ES_API_KEY" not in e, "no API key env")


OPENSEARCH = {
    "eventer": {
        "sinks": {
            "elasticsearch": {"enabled": True, "openSearch": True, "nodes": ["http://opensearch.logging:9200"], "apiKey": "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="},
        },
    }
}


def opensearch(docs):
    expect(flag(docs, "sink") == ["opensearch:?nodes=http://opensearch.logging:9200&apiKey=${ES_API_KEY}"], f"sinks {flag(docs, 'sink')}")
    expect(secret_data(docs) == {"elasticsearch-api-key": OPENSEARCH["eventer"]["sinks"]["elasticsearch"]["apiKey"]}, f"Secret data {secret_data(docs)}")
    e = env(docs)
    expect(e["ES_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": FULLNAME, "key": "elasticsearch-api-key"}, "API key from the chart's Secret")
    expect("ES_PASSWORD" not in e, "no password env")


def elasticsearch_guide(docs):
    expect(flag(docs, "sink") == ["elasticsearch:?nodes=http://elasticsearch.logging:9200&index=k8s&esUserName=elastic&esUserSecret=${ES_PASSWORD}"], f"sinks {flag(docs, 'sink')}")
    expect(env(docs)["ES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": FULLNAME, "key": "elasticsearch-password"}, "password from the chart's Secret")


ARCHIVES_EXISTING_SECRET = {
    "eventer": {
        "existingSecret": "my-eventer-keys",
        "sinks": {
            "kafka": {"enabled": True, "brokers": ["kafka:9092"], "user": "eventer", "password": "ignored"},
            "elasticsearch": {"enabled": True, "nodes": ["http://es:9200"], "user": "elastic", "password": "ignored", "apiKey": "ignored"},
        },
    }
}


def archives_existing_secret(docs):
    expect(not [d for d in docs if d["kind"] == "Secret"], "no chart Secret with existingSecret")
    expect(flag(docs, "sink") == [
        "kafka:?brokers=kafka:9092&user=eventer&password=${KAFKA_PASSWORD}",
        "elasticsearch:?nodes=http://es:9200&esUserName=elastic&esUserSecret=${ES_PASSWORD}",
    ], f"sinks {flag(docs, 'sink')}")
    e = env(docs)
    for name, key in (("KAFKA_PASSWORD", "kafka-password"), ("ES_PASSWORD", "elasticsearch-password")):
        ref = e[name]["valueFrom"]["secretKeyRef"]
        expect(ref == {"name": "my-eventer-keys", "key": key}, f"{name} {ref}")
    expect("ES_API_KEY" not in e, "the apiKey value is not used with existingSecret")
    expect("ignored" not in yaml.safe_dump(docs), "password values are not used with existingSecret")


API_KEY_EXISTING_SECRET = {
    "eventer": {
        "existingSecret": "my-eventer-keys",
        "sinks": {"elasticsearch": {"enabled": True, "openSearch": True, "nodes": ["https://os:9200"], "apiKeyFromExistingSecret": True}},
    }
}


def api_key_existing_secret(docs):
    expect(flag(docs, "sink") == ["opensearch:?nodes=https://os:9200&apiKey=${ES_API_KEY}"], f"sinks {flag(docs, 'sink')}")
    ref = env(docs)["ES_API_KEY"]["valueFrom"]["secretKeyRef"]
    expect(ref == {"name": "my-eventer-keys", "key": "elasticsearch-api-key"}, f"ES_API_KEY {ref}")
    expect("ES_PASSWORD" not in env(docs), "no password env")


def kafka_es(**values) -> dict:
    """Values with the Kafka or Elasticsearch sink enabled and these keys of it."""
    sink = "kafka" if "brokers" in values or values.pop("kafka", False) else "elasticsearch"
    return {"eventer": {"sinks": {sink: {"enabled": True, **values}}}}


ARCHIVE_FAILURES = [
    ("Kafka without brokers", kafka_es(kafka=True, topic="t"), "eventer.sinks.kafka.brokers is required"),
    ("a Kafka broker that is no host:port", kafka_es(brokers=["kafka://b:9092"]), "/eventer/sinks/kafka/brokers/0"),
    ("a Kafka user without a password", kafka_es(brokers=["b:9092"], user="u"), "eventer.sinks.kafka.password is required with user"),
    ("a Kafka password without a user", kafka_es(brokers=["b:9092"], password="p"), "eventer.sinks.kafka.user is required with password"),
    ("a Kafka password among the options", kafka_es(brokers=["b:9092"], options={"password": "leak"}), "secrets do not belong"),
    ("a Kafka client certificate without its key", kafka_es(brokers=["b:9092"], tlsSecret={"name": "t", "cert": "tls.crt"}), "give both cert and key"),
    ("a Kafka client certificate without a Secret", kafka_es(brokers=["b:9092"], tlsSecret={"cert": "tls.crt", "key": "tls.key"}), "need tlsSecret.name"),
    ("a Kafka TLS Secret with no key named", kafka_es(brokers=["b:9092"], tlsSecret={"name": "t", "ca": ""}), "neither ca nor cert/key names a key"),
    ("a Kafka topic name Kafka refuses", kafka_es(brokers=["b:9092"], topic="k8s/events"), "/eventer/sinks/kafka/topic"),
    ("the Kafka topic ..", kafka_es(brokers=["b:9092"], topic=".."), "/eventer/sinks/kafka/topic"),
    ("an unknown Kafka compression", kafka_es(brokers=["b:9092"], compression="brotli"), "/eventer/sinks/kafka/compression"),
    ("Elasticsearch without nodes", kafka_es(index="k8s"), "eventer.sinks.elasticsearch.nodes is required"),
    ("an Elasticsearch index name with capitals", kafka_es(nodes=["http://es:9200"], index="K8s"), "/eventer/sinks/elasticsearch/index"),
    ("an Elasticsearch index name starting with _", kafka_es(nodes=["http://es:9200"], index="_k8s"), "/eventer/sinks/elasticsearch/index"),
    ("an Elasticsearch node that is no URL", kafka_es(nodes=["es:9200"]), "/eventer/sinks/elasticsearch/nodes/0"),
    ("credentials in an Elasticsearch node's URL", kafka_es(nodes=["https://elastic:hunter2@es:9200"]), "credentials do not belong in a node's URL"),
    ("an Elasticsearch user without a password", kafka_es(nodes=["http://es:9200"], user="elastic"), "eventer.sinks.elasticsearch.password is required with user"),
    ("an Elasticsearch password without a user", kafka_es(nodes=["http://es:9200"], password="p"), "eventer.sinks.elasticsearch.user is required with password"),
    ("Elasticsearch basic authentication and an API key", kafka_es(nodes=["http://es:9200"], user="u", password="p", apiKey="k"), "not both"),
    ("an Elasticsearch password among the options", kafka_es(nodes=["http://es:9200"], options={"esUserSecret": "leak"}), "secrets do not belong"),
    ("an Elasticsearch API key among the options", kafka_es(nodes=["http://es:9200"], options={"apiKey": "leak"}), "secrets do not belong"),
    ("an Elasticsearch version eventer does not speak", kafka_es(nodes=["http://es:9200"], ver=2), "/eventer/sinks/elasticsearch/ver"),
]


def main() -> int:
    case("ACK chart keys, DingTalk", ACK_DINGTALK, ack_dingtalk)
    case("ACK chart keys, SLS", ACK_SLS, ack_sls)
    case("SLS with RRSA", ACK_SLS_RRSA, ack_sls_rrsa)
    case("every knob", EVERYTHING, everything)
    case("existingSecret", EXISTING_SECRET, existing_secret)
    case("Lark and Slack", CHAT, chat)
    case("one replica, no checkpoint", SINGLE, single)
    case("config file", CONFIG_FILE, config_file, CONFIG_FILE_TEXT)
    case("custom names", NAMED, named)
    case("webhook with a template", WEBHOOK, webhook)
    case("ACK chart keys with NPD and its plugins, by --set", set_values(*ACK_NPD), ack_npd)
    case("NPD without the kernel monitor, unprivileged", NPD_UNPRIVILEGED, npd_unprivileged)
    case("NPD with monitors and a script of one's own", NPD_OWN, npd_own)
    guide_values: dict = {}

    @check("the node-problem-detector guide's command is found")
    def _():
        guide_values.update(set_values(*guide_command()))

    case("the node-problem-detector guide's command", guide_values, guide)
    case("NPD off by default", {"eventer": {"sinks": {"stdout": {"enabled": True}}}, "npd": {"image": {"tag": "ignored"}}}, no_npd)
    case("ServiceMonitor", SERVICE_MONITOR, service_monitor)
    case("WeCom robot and app", WECOM, wecom)
    case("Kafka, every knob", KAFKA, kafka, check_says=("liveness    /healthz fails when a sink holds events with no progress for 10m",))
    case("Kafka, a CA of another Secret's key", KAFKA_CA_ONLY, kafka_ca_only)
    case("Elasticsearch, every knob", ELASTICSEARCH, elasticsearch)
    case("OpenSearch with an API key", OPENSEARCH, opensearch)
    for page, expected in (("kafka.md", kafka_guide), ("elasticsearch.md", elasticsearch_guide)):
        example: dict = {}

        @check(f"docs/{page}: the chart example is found")
        def _(page=page, example=example):
            example.update(chart_example(ROOT / "docs" / page))

        case(f"docs/{page}'s chart values", example, expected)
    case("Kafka and Elasticsearch with existingSecret", ARCHIVES_EXISTING_SECRET, archives_existing_secret)
    case("an Elasticsearch API key from existingSecret", API_KEY_EXISTING_SECRET, api_key_existing_secret)

    for name, values, message in FAILURES + ARCHIVE_FAILURES:

        @check(f"invalid values fail: {name}")
        def _(values=values, message=message):
            if isinstance(values, tuple):
                values = set_values(*values)
            error = render_error(values)
            expect(error, "rendered without an error")
            expect(message in error, f"error does not say {message!r}: {error[:300]}")

    @check("install notes name the ACK keys the chart does not use, and NPD's plugins")
    def _():
        with helm().Chart.load(str(CHART)) as chart:
            out = chart.render(set_values(*ACK_NPD), name=RELEASE, namespace=NAMESPACE, is_install=True)
        notes = next(text for path, text in out.items() if path.endswith("NOTES.txt"))
        for key in ("controller.clusterId", "controller.regionId", "plugin_settings.check_fd_warning_percentage"):
            expect(key in notes, f"{key} not named in the notes: {notes[-400:]}")
        expect("with fd_check, network_problem_check" in notes, "the plugins in the notes")

    @check("helm lint fails on a misspelt key, naming it")
    def _():
        problems = lint(set_values("eventer.sinks.dingtalk.levle=Warning"))
        expect(any("levle" in p for p in problems), f"lint: {problems}")

    @check("values.schema.json names every key of values.yaml")
    def _():
        schema = json.loads((CHART / "values.schema.json").read_text())
        missing: list[str] = []
        schema_paths(schema, schema, "", yaml.safe_load((CHART / "values.yaml").read_text()), missing)
        expect(not missing, f"not in the schema: {missing}")

    @check("NPD's monitors match real log lines as NPD matches them")
    def _():
        for file, line, expected in LOG_LINES:
            rules = chart_monitor(file)["rules"]
            found = {r["reason"] for r in rules if re.search(r["pattern"] + r"\Z", line)}
            expect(found == expected, f"{file}: {line!r} gives {sorted(found)}, expected {sorted(expected)}")

    @check("docs/node-problem-detector.md: the filter names every problem the chart's monitors report")
    def _():
        text = DOCS_NPD.read_text()
        expect(re.search(r"^kinds=Node&level=Normal&reasons=\S+$", text, re.M), "the guide gives the filter on a line of its own")
        files = ["kernel-monitor.json", "docker-monitor.json", "systemd-monitor.json", "fd-check.json", "network-problem-check.json"]
        reported = problem_reasons(chart_monitor(f) for f in files) - {"KubeletStart", "DockerStart", "ContainerdStart"}
        # The filter, the --set command and the values example: each the same list.
        lists = re.findall(r"reasons=((?:[A-Za-z0-9]+(?:\\?,)?)+)", text)
        expect(len(lists) >= 3, f"reason lists in the guide: {len(lists)}")
        for found in lists:
            documented = set(found.replace("\\,", ",").split(","))
            expect(documented == reported, f"missing {sorted(reported - documented)}, not reported {sorted(documented - reported)}")

    plain: list[dict] = []

    @check("deploy/kubernetes: parses, and the invariants hold")
    def _():
        docs, namespace = plain_manifests()
        plain.extend(docs)
        invariants(docs, namespace)

    @check("deploy/kubernetes: DingTalk from the Secret, leader election, checkpoint")
    def _():
        expect(plain, "nothing parsed")
        _, q = one_sink(plain, "dingtalk")
        expect(q["access_token"] == ["${DINGTALK_TOKEN}"] and q["sign"] == ["${DINGTALK_SECRET}"], f"{q}")
        expect(set(secret_data(plain)) >= {"dingtalk-token", "dingtalk-secret"}, "Secret keys")
        expect(only(plain, "Deployment")["spec"]["replicas"] == 2 and "--leader-elect" in args(plain), "HA")
        expect(flag(plain, "checkpoint") == ["configmap:$(POD_NAMESPACE)/eventer-checkpoint"], "checkpoint")

    if os.environ.get("EVENTER_BIN"):

        @check("deploy/kubernetes: eventer check accepts the arguments")
        def _():
            expect(plain, "nothing parsed")
            eventer_check(plain, "kube-system")

    failed = 0
    for name, problem in results:
        if problem is None:
            print(f"ok - {name}")
        else:
            failed += 1
            print(f"FAIL - {name}: {problem}")
    if not os.environ.get("EVENTER_BIN"):
        print("note: EVENTER_BIN not set; the rendered arguments were not run through `eventer check`")
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
