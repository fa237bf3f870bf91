"""Checks the deployment artifacts in deploy/ (run by tests/e2e/deploy.rs).

    python deploy_check.py kubernetes SWITCHYARD_BIN   # deploy/kubernetes/*/ manifests
    python deploy_check.py helm SWITCHYARD_BIN         # deploy/helm/switchyard, rendered

Every object is validated against the Kubernetes JSON schemas that kubernetes-validate
bundles (strict: unknown fields are errors), except the Prometheus Operator's
ServiceMonitor / PodMonitor, whose CRD is not in those schemas: they are checked against
the fields of monitoring.coreos.com/v1 this repository uses (see check_monitor).
Then the objects of one directory (or one rendering) are checked against each other and
against the gateway config they carry: ports, selectors, Secret references, ${VAR}s,
probes, the drain budget. Finally the gateway config is run through `switchyard check`.

The Helm chart is linted and rendered by Helm's own Go engine (helm-python-sdk, a ctypes
binding of Helm v4's SDK): no helm binary is needed. Prints one line per problem and
exits 1 if there was any.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.33.0"  # native sidecars are GA here (beta and on by default since 1.29)
CONFIG_PATH = "/etc/switchyard/gateway.yaml"
DRAIN_SECONDS = 30  # SIGTERM drains in-flight requests for up to this long
MONITOR_KINDS = {"ServiceMonitor", "PodMonitor"}

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


# --- schema validation --------------------------------------------------------------


def validate_schema(obj, where):
    kind = obj.get("kind")
    if kind in MONITOR_KINDS:
        check_monitor(obj, where)
        return
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        problem(where, f"{kind}/{name(obj)} does not validate against Kubernetes {K8S_VERSION}: {path}: {e.message}")
    except kubernetes_validate.SchemaNotFoundError as e:
        problem(where, f"no schema for {kind} {obj.get('apiVersion')}: {e.message}")


def check_monitor(obj, where):
    """The Prometheus Operator CRDs are not in kubernetes-validate's schemas (they are not
    core Kubernetes). This checks the shape monitoring.coreos.com/v1 requires of the fields
    used here: a selector, and endpoints with a port name, an absolute path and durations."""
    kind = obj["kind"]
    allowed_top = {"apiVersion", "kind", "metadata", "spec"}
    if obj.get("apiVersion") != "monitoring.coreos.com/v1":
        problem(where, f"{kind} apiVersion must be monitoring.coreos.com/v1")
    if set(obj) - allowed_top:
        problem(where, f"{kind}: unknown top-level fields {sorted(set(obj) - allowed_top)}")
    spec = obj.get("spec") or {}
    list_key = "endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints"
    allowed_spec = {"selector", list_key, "namespaceSelector", "jobLabel"}
    if set(spec) - allowed_spec:
        problem(where, f"{kind}: unknown spec fields {sorted(set(spec) - allowed_spec)}")
    labels = (spec.get("selector") or {}).get("matchLabels")
    if not isinstance(labels, dict) or not labels:
        problem(where, f"{kind}: spec.selector.matchLabels must be a non-empty map")
    endpoints = spec.get(list_key)
    if not isinstance(endpoints, list) or not endpoints:
        problem(where, f"{kind}: spec.{list_key} must be a non-empty list")
        return
    for i, ep in enumerate(endpoints):
        extra = set(ep) - {"port", "path", "interval", "scrapeTimeout", "scheme"}
        if extra:
            problem(where, f"{kind}: spec.{list_key}[{i}]: unknown fields {sorted(extra)}")
        if not isinstance(ep.get("port"), str):
            problem(where, f"{kind}: spec.{list_key}[{i}].port must be a port name")
        if not str(ep.get("path", "/metrics")).startswith("/"):
            problem(where, f"{kind}: spec.{list_key}[{i}].path must start with /")
        for d in ("interval", "scrapeTimeout"):
            if d in ep and not re.fullmatch(r"(\d+(ms|s|m|h))+", str(ep[d])):
                problem(where, f"{kind}: spec.{list_key}[{i}].{d}: not a Prometheus duration: {ep[d]!r}")


# --- cross-references ---------------------------------------------------------------


def name(obj):
    return (obj.get("metadata") or {}).get("name", "?")


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def listen_port(addr, env, default):
    """Port of a listen address from the config, `${VAR:-default}` resolved from env."""
    addr = str(addr if addr is not None else default)
    m = re.fullmatch(r"\$\{(\w+)(?::-([^}]*))?\}", addr)
    if m:
        addr = env.get(m.group(1), m.group(2) or "")
    host, _, port = addr.rpartition(":")
    return host, int(port)


def env_of(container):
    """Plain values of the container's env (secretKeyRefs map to a marker)."""
    out = {}
    for e in container.get("env") or []:
        out[e["name"]] = e.get("value", "<from secret>")
    return out


def check_set(objs, where, switchyard_bin):
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    deployments = by_kind.get("Deployment", [])
    if len(deployments) != 1:
        problem(where, f"expected one Deployment, found {len(deployments)}")
        return
    dep = deployments[0]
    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"].get("labels") or {}
    spec = pod["spec"]
    if not selects(dep["spec"]["selector"]["matchLabels"], pod_labels):
        problem(where, "the Deployment's selector does not match its pod labels")

    gateways = [c for c in spec.get("containers", []) + spec.get("initContainers", []) if c["name"] == "switchyard"]
    if len(gateways) != 1:
        problem(where, "expected one container named switchyard")
        return
    gw = gateways[0]
    sidecar = gw in spec.get("initContainers", [])
    if sidecar:
        if gw.get("restartPolicy") != "Always":
            problem(where, "the sidecar gateway (an init container) needs restartPolicy: Always")
        app_env = {k: v for c in spec["containers"] for k, v in env_of(c).items()}
        base = app_env.get("OPENAI_BASE_URL", "")
        if not base.startswith("http://127.0.0.1:"):
            problem(where, f"the application should call the sidecar on 127.0.0.1, has OPENAI_BASE_URL={base!r}")
    if gw.get("args") != ["serve", "-c", CONFIG_PATH]:
        problem(where, f"gateway args {gw.get('args')} should be serve -c {CONFIG_PATH}")

    # The config: from the ConfigMap mounted at /etc/switchyard.
    mounts = {m["name"]: m for m in gw.get("volumeMounts", [])}
    config_text = None
    for vol in spec.get("volumes", []):
        mount = mounts.get(vol["name"])
        if not mount or mount["mountPath"] != os.path.dirname(CONFIG_PATH):
            continue
        source = vol.get("configMap") or vol.get("secret")
        src_name = source.get("name") or source.get("secretName")
        key = os.path.basename(CONFIG_PATH)
        for item in source.get("items") or []:
            if item["path"] == os.path.basename(CONFIG_PATH):
                key = item["key"]
        kind = "ConfigMap" if "configMap" in vol else "Secret"
        found = [o for o in by_kind.get(kind, []) if name(o) == src_name]
        if found:
            data = found[0].get("data") or found[0].get("stringData") or {}
            config_text = data.get(key)
            if config_text is None:
                problem(where, f"{kind} {src_name} has no key {key}")
        else:
            config_text = ""  # managed outside this set (existingConfigMap / existingSecret)
    if config_text is None:
        problem(where, f"nothing is mounted at {os.path.dirname(CONFIG_PATH)}")
        return

    # Secrets referenced by env exist and have the key (when they are part of this set).
    secrets = {name(s): set((s.get("stringData") or {}) | (s.get("data") or {})) for s in by_kind.get("Secret", [])}
    provided = set()
    for e in gw.get("env") or []:
        provided.add(e["name"])
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if ref and ref["name"] in secrets and ref["key"] not in secrets[ref["name"]]:
            problem(where, f"env {e['name']}: Secret {ref['name']} has no key {ref['key']}")

    ports = {p["name"]: p["containerPort"] for p in gw.get("ports", [])}
    env = env_of(gw)
    if config_text:
        config = yaml.safe_load(config_text)
        # ${VAR} without a default must come from the container's environment.
        for var, default in re.findall(r"(?<!\$)\$\{(\w+)(:-[^}]*)?\}", config_text):
            if not default and var not in provided:
                problem(where, f"the config uses ${{{var}}} but the gateway container does not set it")
        host, http_port = listen_port((config.get("server") or {}).get("listen"), env, "0.0.0.0:8080")
        metrics = config.get("metrics") or {}
        _, metrics_port = listen_port(metrics.get("listen"), env, "0.0.0.0:9464")
        if not metrics.get("enabled", False):
            problem(where, "the config does not enable metrics")
        if sidecar and host != "127.0.0.1":
            problem(where, f"a sidecar's data plane should listen on 127.0.0.1, not {host}")
        if not sidecar and ports.get("http") != http_port:
            problem(where, f"containerPort http {ports.get('http')} != server.listen port {http_port}")
        if ports.get("metrics") != metrics_port:
            problem(where, f"containerPort metrics {ports.get('metrics')} != metrics.listen port {metrics_port}")
        check_config(config_text, env, where, switchyard_bin)
    else:
        metrics_port = ports.get("metrics")

    annotations = pod["metadata"].get("annotations") or {}
    if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/port") != str(metrics_port):
        problem(where, f"pod annotations prometheus.io/scrape and /port should say true and {metrics_port}")

    # Probes: liveness /healthz, readiness /readyz; httpGet on the named port, or the
    # image's health check when the data plane is loopback-only.
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        p = gw.get(probe)
        if not p:
            problem(where, f"gateway has no {probe}")
        elif "httpGet" in p:
            if p["httpGet"].get("path") != path or p["httpGet"].get("port") != "http":
                problem(where, f"{probe} should GET {path} on port http, has {p['httpGet']}")
        elif p.get("exec", {}).get("command") != ["switchyard-healthcheck", path]:
            problem(where, f"{probe} should run switchyard-healthcheck {path}, has {p}")

    # The drain budget: preStop + 30 s drain must fit in the grace period.
    grace = spec.get("terminationGracePeriodSeconds", 30)
    pre_stop = 0
    cmd = ((gw.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command") or []
    if cmd[:1] == ["sleep"]:
        pre_stop = int(cmd[1])
    elif not sidecar:
        problem(where, "the standalone gateway should have a preStop sleep")
    if grace < pre_stop + DRAIN_SECONDS + 5:
        problem(where, f"terminationGracePeriodSeconds {grace} < preStop {pre_stop} + drain {DRAIN_SECONDS} + 5")

    res = gw.get("resources") or {}
    for path in (("requests", "cpu"), ("requests", "memory"), ("limits", "memory")):
        if path[1] not in (res.get(path[0]) or {}):
            problem(where, f"gateway resources.{'.'.join(path)} is not set")

    # Services, PDBs and monitors select these pods, by port names that exist.
    for svc in by_kind.get("Service", []):
        if not selects(svc["spec"]["selector"], pod_labels):
            problem(where, f"Service {name(svc)} does not select the pods")
        for p in svc["spec"]["ports"]:
            if isinstance(p["targetPort"], str) and p["targetPort"] not in ports:
                problem(where, f"Service {name(svc)} targets port {p['targetPort']}, which the gateway does not name")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not selects(pdb["spec"]["selector"]["matchLabels"], pod_labels):
            problem(where, f"PodDisruptionBudget {name(pdb)} does not select the pods")
    for sm in by_kind.get("ServiceMonitor", []):
        svcs = [s for s in by_kind.get("Service", []) if selects(sm["spec"]["selector"]["matchLabels"], s["metadata"].get("labels") or {})]
        if not svcs:
            problem(where, f"ServiceMonitor {name(sm)} selects no Service")
        for ep in sm["spec"]["endpoints"]:
            if not any(ep["port"] in {p["name"] for p in s["spec"]["ports"]} for s in svcs):
                problem(where, f"ServiceMonitor {name(sm)}: no selected Service has a port named {ep['port']}")
    for pm in by_kind.get("PodMonitor", []):
        if not selects(pm["spec"]["selector"]["matchLabels"], pod_labels):
            problem(where, f"PodMonitor {name(pm)} does not select the pods")
        for ep in pm["spec"]["podMetricsEndpoints"]:
            if ep["port"] not in ports:
                problem(where, f"PodMonitor {name(pm)}: the gateway has no port named {ep['port']}")


def check_config(text, env, where, switchyard_bin):
    """`switchyard check` on the config, with the container's env (secrets as placeholders)."""
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    for k, v in env.items():
        run_env[k] = "placeholder" if v == "<from secret>" else v
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gateway.yaml"
        path.write_text(text)
        out = run_check(switchyard_bin, path, run_env)
        if out.returncode != 0:
            problem(where, f"switchyard check rejects the config:\n{out.stderr}")


def run_check(switchyard_bin, path, env):
    return subprocess.run([switchyard_bin, "check", "-c", str(path)], env=env, capture_output=True, text=True, timeout=60)


# --- entry points -------------------------------------------------------------------


def load_all(text, where):
    try:
        return [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as e:
        problem(where, f"not YAML: {e}")
        return []


def kubernetes(switchyard_bin):
    base = ROOT / "deploy/kubernetes"
    dirs = sorted(d for d in base.iterdir() if d.is_dir())
    if not dirs:
        problem(str(base), "no manifest directories")
    for d in dirs:
        objs = []
        files = sorted(d.glob("*.yaml"))
        for f in files:
            where = str(f.relative_to(ROOT))
            for obj in load_all(f.read_text(), where):
                validate_schema(obj, where)
                objs.append(obj)
        print(f"{d.relative_to(ROOT)}: {len(objs)} objects in {len(files)} files")
        check_set(objs, str(d.relative_to(ROOT)), switchyard_bin)


HELM_CASES = {
    "default (standalone)": {},
    "standalone with a ServiceMonitor": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
    "sidecar with a PodMonitor": {"mode": "sidecar", "metrics": {"podMonitor": {"enabled": True}}},
    "config from an existing ConfigMap, keys from an existing Secret": {
        "config": {"existingConfigMap": "my-gateway-config"},
        "secretEnv": {"existingSecret": "my-llm-keys"},
    },
    "config from an existing Secret, other ports": {
        "config": {"existingSecret": "my-gateway-secret-config", "key": "config.yaml"},
        "ports": {"http": 9000, "metrics": 9100},
    },
}


def helm(switchyard_bin):
    import helm_python

    chart = ROOT / "deploy/helm/switchyard"
    print(f"helm-python-sdk {helm_python.helm_c_version()}, Helm SDK {helm_python.helm_sdk_version()}")
    for case, values in HELM_CASES.items():
        where = f"helm chart, {case}"
        report = helm_python.lint(str(chart), values, strict=True, kube_version=f"v{K8S_VERSION}")
        for m in report.get("messages", []):
            if m["severity"] >= 2:
                problem(where, f"helm lint: {m['path']}: {m['error']}")
        for e in report.get("errors", []):
            problem(where, f"helm lint: {e}")
        with helm_python.Chart.load(str(chart)) as c:
            try:
                rendered = c.render(values, name="demo", namespace="ai")
            except Exception as e:  # HelmRenderError and friends: report, go on
                problem(where, f"helm template failed: {e}")
                continue
        objs = []
        for path, text in sorted(rendered.items()):
            if path.endswith(".txt"):
                continue
            for obj in load_all(text, f"{where}, {path}"):
                validate_schema(obj, f"{where}, {path}")
                objs.append(obj)
        kinds = sorted(o["kind"] for o in objs)
        print(f"{where}: {', '.join(kinds)}")
        check_set(objs, where, switchyard_bin)
        if "ServiceMonitor" in str(values) and "ServiceMonitor" not in kinds:
            problem(where, "serviceMonitor.enabled rendered no ServiceMonitor")
        if "podMonitor" in str(values) and "PodMonitor" not in kinds:
            problem(where, "podMonitor.enabled rendered no PodMonitor")
    # A bad mode is refused at render time, not rendered into something odd.
    with helm_python.Chart.load(str(chart)) as c:
        try:
            c.render({"mode": "daemonset"}, name="demo", namespace="ai")
            problem("helm chart", "mode: daemonset rendered instead of failing")
        except Exception as e:
            if "mode must be standalone or sidecar" not in str(e):
                problem("helm chart", f"mode: daemonset failed for another reason: {e}")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("kubernetes", "helm"):
        print(__doc__)
        return 2
    {"kubernetes": kubernetes, "helm": helm}[sys.argv[1]](sys.argv[2])
    for p in problems:
        print(f"PROBLEM {p}")
    print(json.dumps({"problems": len(problems)}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
