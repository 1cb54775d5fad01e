#!/usr/bin/env python3
"""Lint and render the eventer Helm chart with Helm's own Go code, and check the output.

Run by deploy/helm/test.sh, which installs what this needs (helm-python-sdk: the official Helm
v4 Go SDK as a library, with `lint` and offline `render`, i.e. `helm lint` and
`helm template`; PyYAML). For each value set below the chart is linted (strict) and
rendered, and the manifests are checked:

- the keys of ACK's ack-node-problem-detector chart land where they should: --sink URIs carry level/label/kinds/namespaces,
  project/logStore, and tokens only as ${VAR} references;
- every ${VAR} an argument uses is defined in the container's environment, and secrets come
  from secretKeyRef (never a literal value), and no secret value appears outside the Secret;
- RBAC is least privilege: events get/list/watch cluster-wide; configmaps and leases only in
  the release's namespace, get/update only on the names the arguments use;
- securityContext (non-root, read-only root filesystem, no capabilities), probes on
  /healthz and /readyz, leader election whenever there is more than one replica;
- invalid values fail with a message that names the key.

The plain manifests in deploy/kubernetes get the same checks.

With EVENTER_BIN=<path to an eventer binary that has the `check` subcommand>, every rendered
argument list is also validated by `eventer check` (with dummy secrets in the environment),
so the URIs are checked by eventer's own parser.

Prints one line per check and ends with `N passed, N failed`; exits 1 on any failure.
"""

from __future__ import annotations

import base64
import os
import re
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
SECRET_ENV = {"DINGTALK_TOKEN", "DINGTALK_SECRET", "AccessKeyId", "AccessKeySecret"}

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
    # Secret options in URIs are references, never values.
    for uri in flag(docs, "sink"):
        _, _, query = split_uri(uri)
        for key, values in query.items():
            if key.lower() in ("access_token", "sign", "accesskeyid", "accesskeysecret"):
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
    if not checkpoint and not leader:
        expect(not roles and not [d for d in docs if d["kind"] == "RoleBinding"], "no Role without checkpoint or leader election")
        return
    role = only(docs, "Role")
    allowed = {"configmaps": set(), "leases": set()}
    for rule in role["rules"]:
        expect(len(rule["resources"]) == 1 and rule["resources"][0] in allowed, f"Role resources {rule['resources']}")
        resource = rule["resources"][0]
        expect(rule["apiGroups"] == (["coordination.k8s.io"] if resource == "leases" else [""]), f"Role apiGroups {rule['apiGroups']}")
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
    rb = only(docs, "RoleBinding")
    expect(rb["roleRef"]["kind"] == "Role" and rb["roleRef"]["name"] == role["metadata"]["name"], "RoleBinding refers to the Role")
    expect(rb["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}], f"RoleBinding subject {rb['subjects']}")


# --- eventer check ---------------------------------------------------------------------


def eventer_check(docs: list[dict], namespace: str, config_text: str | None = None) -> None:
    binary = os.environ.get("EVENTER_BIN")
    if not binary:
        return
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for name, entry in env(docs).items():
        if "value" in entry:
            environment[name] = str(entry["value"])
        elif "fieldRef" in entry.get("valueFrom", {}):
            environment[name] = namespace if entry["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace" else "eventer-0"
        else:
            environment[name] = f"dummy-{name.lower()}"
    with tempfile.TemporaryDirectory() as tmp:
        argv = []
        for arg in args(docs):
            arg = arg.replace("$(POD_NAMESPACE)", namespace)  # Kubernetes' own expansion
            if arg.startswith("--config=") and config_text is not None:
                path = Path(tmp) / "eventer.yaml"
                path.write_text(config_text)
                arg = f"--config={path}"
            argv.append(arg)
        proc = subprocess.run([binary, "check", *argv], env=environment, capture_output=True, text=True, timeout=60)
    expect(proc.returncode == 0, f"eventer check exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[:500]}")
    for value in environment.values():
        if value.startswith("dummy-"):
            expect(value not in proc.stdout + proc.stderr, "eventer check printed a secret")


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


def case(name: str, values: dict, extra=None, config_text: str | None = None) -> None:
    docs: list[dict] = []

    @check(f"{name}: helm lint (strict) has no errors or warnings")
    def _():
        problems = lint(values)
        expect(not problems, "; ".join(problems))

    @check(f"{name}: renders, and the invariants hold")
    def _():
        docs.extend(render(values))
        invariants(docs, NAMESPACE)

    if extra:

        @check(f"{name}: the values land where they should")
        def _():
            expect(docs, "nothing rendered")
            extra(docs)

    if os.environ.get("EVENTER_BIN"):

        @check(f"{name}: eventer check accepts the rendered arguments")
        def _():
            expect(docs, "nothing rendered")
            eventer_check(docs, NAMESPACE, config_text)


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


FAILURES = [
    ("no sink", {}, "no sink"),
    ("DingTalk without a token", {"eventer": {"sinks": {"dingtalk": {"enabled": True}}}}, "eventer.sinks.dingtalk.token is required"),
    ("SLS without a logstore", {"eventer": {"sinks": {"sls": {"enabled": True, "project": "p"}}}}, "eventer.sinks.sls.project and eventer.sinks.sls.logstore are required"),
    ("RRSA without a role", {"eventer": {"sinks": {"sls": {"enabled": True, "project": "p", "logstore": "l", "rrsa": {"enabled": True}}}}}, "roleArn and oidcProviderArn are required"),
    ("half an AccessKey pair", {"eventer": {"sinks": {"sls": {"enabled": True, "project": "p", "logstore": "l", "accessKeyId": "x"}}}}, "set both accessKeyId and accessKeySecret"),
    ("two replicas without leader election", {"eventer": {"leaderElection": {"enabled": False}, "sinks": {"stdout": {"enabled": True}}}}, "needs eventer.leaderElection.enabled"),
    ("no source", {"eventer": {"source": "", "sinks": {"stdout": {"enabled": True}}}}, "eventer.source is empty"),
    ("a token among the options", {"eventer": {"sinks": {"dingtalk": {"enabled": True, "token": "x", "options": {"access_token": "leak"}}}}}, "secrets do not belong"),
]


def main() -> int:
    case("ACK chart keys, DingTalk", ACK_DINGTALK, ack_dingtalk)
    case("ACK chart keys, SLS", ACK_SLS, ack_sls)
    case("SLS with RRSA", ACK_SLS_RRSA, ack_sls_rrsa)
    case("every knob", EVERYTHING, everything)
    case("existingSecret", EXISTING_SECRET, existing_secret)
    case("one replica, no checkpoint", SINGLE, single)
    case("config file", CONFIG_FILE, config_file, CONFIG_FILE_TEXT)
    case("custom names", NAMED, named)

    for name, values, message in FAILURES:

        @check(f"invalid values fail: {name}")
        def _(values=values, message=message):
            error = render_error(values)
            expect(error, "rendered without an error")
            expect(message in error, f"error does not say {message!r}: {error[:300]}")

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
