"""Checks the deployment artifacts in deploy/ (run by tests/e2e/deploy.rs).

    python deploy_check.py kubernetes SWITCHYARD_BIN   # deploy/kubernetes/*/ manifests (standalone, sidecar, redis)
    python deploy_check.py helm SWITCHYARD_BIN         # deploy/helm/switchyard, rendered

Every object is validated against the Kubernetes JSON schemas that kubernetes-validate
bundles (strict: unknown fields are errors), except the Prometheus Operator's
ServiceMonitor / PodMonitor, whose CRD is not in those schemas: they are checked against
the fields of monitoring.coreos.com/v1 this repository uses (see check_monitor).
Then the objects of one directory (or one rendering) are checked against each other and
against the gateway config they carry: ports, selectors, Secret references, ${VAR}s,
probes, the drain budget. Where the config shares its state through Redis (`state:
{backend: redis}`, deploy/kubernetes/redis/), the Redis Deployment in the same set is
checked too (image, no persistence, password, probes, resources, non-root, one replica)
and against the config: the URL names its Service and port, the password comes from the
same Secret key on both sides, only the gateway's pods may reach it (NetworkPolicy).
Finally the gateway config is run through `switchyard check` — whole when the binary knows
`state:` and `cache:` (probed once), else without those two sections, and it says so.

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
    gateway_deps = [d for d in deployments if "switchyard" in container_names(d)]
    if len(gateway_deps) != 1:
        problem(where, f"expected one Deployment with a switchyard container, found {len(gateway_deps)}")
        return
    dep = gateway_deps[0]
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

    # Services, PDBs and monitors select these pods, by port names that exist. A Service
    # selects the pods of exactly one Deployment (the gateway's must not reach Redis too).
    for svc in by_kind.get("Service", []):
        selected = [d for d in deployments if selects(svc["spec"]["selector"], pod_labels_of(d))]
        if len(selected) != 1:
            what = ", ".join(name(d) for d in selected) or "none"
            problem(where, f"Service {name(svc)} should select the pods of one Deployment, selects: {what}")
            continue
        target = selected[0]
        named = {p["name"] for c in pod_containers(target) for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            if isinstance(p["targetPort"], str) and p["targetPort"] not in named:
                problem(where, f"Service {name(svc)} targets port {p['targetPort']}, which {name(target)}'s containers do not name")
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

    config = yaml.safe_load(config_text) if config_text else None
    check_state(config, gw, dep, by_kind, where)


# --- shared state: the Redis beside the gateway ---------------------------------------


def pod_labels_of(dep):
    return dep["spec"]["template"]["metadata"].get("labels") or {}


def pod_containers(dep):
    spec = dep["spec"]["template"]["spec"]
    return spec.get("containers", []) + spec.get("initContainers", [])


def container_names(dep):
    return {c["name"] for c in pod_containers(dep)}


def secret_source(container, var):
    """(Secret name, key) the container's env var `var` comes from, or None."""
    for e in container.get("env") or []:
        if e["name"] == var:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            return (ref["name"], ref["key"]) if ref else None
    return None


def k8s_bytes(quantity):
    """Kubernetes memory quantity (256Mi, 1G, 1000000) in bytes."""
    m = re.fullmatch(r"(\d+)([KMGT]i?)?", str(quantity))
    if not m:
        return None
    units = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return int(m.group(1)) * units[m.group(2)]


def redis_bytes(value):
    """Redis memory size (200mb, 1gb, 100m, 1048576) in bytes."""
    m = re.fullmatch(r"(\d+)(k|kb|m|mb|g|gb)?", str(value).lower())
    if not m:
        return None
    units = {None: 1, "k": 1000, "kb": 1024, "m": 10**6, "mb": 2**20, "g": 10**9, "gb": 2**30}
    return int(m.group(1)) * units[m.group(2)]


def redis_arg(args, flag):
    """The value after `flag` in a redis-server argument list, or None."""
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None


def check_state(config, gw, gw_dep, by_kind, where):
    """`state: {backend: redis}` and the Redis Deployment of the same set agree."""
    state = (config or {}).get("state") or {}
    deployments = by_kind.get("Deployment", [])
    redis_deps = [d for d in deployments if d is not gw_dep]
    for d in redis_deps:
        if not any(str(c.get("image", "")).startswith("redis:") for c in pod_containers(d)):
            problem(where, f"Deployment {name(d)} is neither the gateway nor a Redis")
    redis_deps = [d for d in redis_deps if any(str(c.get("image", "")).startswith("redis:") for c in pod_containers(d))]
    if state.get("backend") != "redis":
        if redis_deps and config is not None:
            problem(where, f"Redis {name(redis_deps[0])} is deployed but the config does not use it (state.backend is not redis)")
        return
    replicas = gw_dep["spec"].get("replicas", 1)
    if replicas < 2:
        problem(where, f"state.backend redis with {replicas} gateway replica: nothing to share")
    url = str(state.get("url", ""))
    m = re.fullmatch(r"(rediss?)://(?:[^@/]*@)?([^:/]+)(?::(\d+))?(?:/(\d+))?", url)
    if not m:
        problem(where, f"state.url {url!r} is not redis://host[:port][/db] or rediss://…")
        return
    host, port = m.group(2), int(m.group(3) or 6379)
    if "@" in url:
        problem(where, "state.url carries credentials: use state.username / state.password from a Secret")
    if not redis_deps:
        print(f"{where}: state.url {url} is outside this set (not checked against a Redis here)")
        return
    if len(redis_deps) != 1:
        problem(where, f"expected one Redis Deployment, found {len(redis_deps)}")
        return
    rd = redis_deps[0]
    redis_labels = pod_labels_of(rd)
    rspec = rd["spec"]["template"]["spec"]
    [redis] = [c for c in rspec.get("containers", []) if str(c.get("image", "")).startswith("redis:")]
    rports = {p["name"]: p["containerPort"] for p in redis.get("ports", [])}
    where_r = f"{where}: Redis {name(rd)}"

    # The URL's host is a Service of this set that selects the Redis pods, on that port.
    svc = [s for s in by_kind.get("Service", []) if name(s) == host.split(".")[0]]
    if not svc:
        problem(where, f"state.url host {host} is not a Service in this set")
    elif not selects(svc[0]["spec"]["selector"], redis_labels):
        problem(where, f"Service {host} does not select the Redis pods")
    else:
        sp = [p for p in svc[0]["spec"]["ports"] if p["port"] == port]
        if not sp:
            problem(where, f"Service {host} has no port {port} (state.url)")
        else:
            target = sp[0].get("targetPort", port)
            if (rports.get(target) if isinstance(target, str) else target) not in rports.values():
                problem(where, f"Service {host} port {port} targets {target}, which the Redis container does not expose")

    # Redis itself: no persistence, a password, bounded memory, probes, non-root, one writer.
    args = [str(a) for a in (redis.get("command") or []) + (redis.get("args") or [])]
    if redis_arg(args, "--save") != "" or redis_arg(args, "--appendonly") != "no":
        problem(where_r, f'should run with --save "" --appendonly no (no persistence), has {args}')
    if rd["spec"].get("replicas", 1) != 1:
        problem(where_r, "should have one replica (a second one would split the shared counts)")
    if (rd["spec"].get("strategy") or {}).get("type") != "Recreate":
        problem(where_r, "should be replaced with strategy Recreate (never two at once)")
    res = redis.get("resources") or {}
    for path in (("requests", "cpu"), ("requests", "memory"), ("limits", "memory")):
        if path[1] not in (res.get(path[0]) or {}):
            problem(where_r, f"resources.{'.'.join(path)} is not set")
    limit = k8s_bytes((res.get("limits") or {}).get("memory"))
    maxmemory = redis_bytes(redis_arg(args, "--maxmemory"))
    if maxmemory is None:
        problem(where_r, "should set --maxmemory (under its memory limit) and a --maxmemory-policy")
    elif limit is not None and maxmemory >= limit:
        problem(where_r, f"--maxmemory {redis_arg(args, '--maxmemory')} does not fit its memory limit")
    for probe in ("livenessProbe", "readinessProbe"):
        if not redis.get(probe):
            problem(where_r, f"has no {probe}")
    pod_sc = rspec.get("securityContext") or {}
    sc = redis.get("securityContext") or {}
    if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
        problem(where_r, "should run as non-root (runAsNonRoot)")
    if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True:
        problem(where_r, "should set allowPrivilegeEscalation: false and readOnlyRootFilesystem: true")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        problem(where_r, "should drop ALL capabilities")

    # The password: ${VAR} in the config, VAR from a Secret key, the same key Redis requires.
    password = str(state.get("password", ""))
    pm = re.fullmatch(r"\$\{(\w+)\}", password)
    requirepass = redis_arg(args, "--requirepass")
    if not pm:
        problem(where, "state.password should be a ${VAR} from a Secret (Redis requires one)")
    elif requirepass is None:
        problem(where_r, "has no --requirepass though the config sends a password")
    else:
        gw_src = secret_source(gw, pm.group(1))
        rm = re.fullmatch(r"\$\((\w+)\)", requirepass)
        redis_src = secret_source(redis, rm.group(1)) if rm else None
        if gw_src is None:
            problem(where, f"the gateway's {pm.group(1)} should come from a Secret (secretKeyRef)")
        if redis_src is None:
            problem(where_r, "--requirepass should be $(VAR) with VAR from a Secret (secretKeyRef)")
        if gw_src and redis_src and gw_src != redis_src:
            problem(where, f"the gateway's password comes from {gw_src}, Redis' from {redis_src}")

    secrets = {name(s): set((s.get("stringData") or {}) | (s.get("data") or {})) for s in by_kind.get("Secret", [])}
    for e in redis.get("env") or []:
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if ref and ref["name"] in secrets and ref["key"] not in secrets[ref["name"]]:
            problem(where_r, f"env {e['name']}: Secret {ref['name']} has no key {ref['key']}")

    # Only the gateway may reach it.
    policies = [n for n in by_kind.get("NetworkPolicy", []) if selects(n["spec"]["podSelector"].get("matchLabels"), redis_labels)]
    if not policies:
        problem(where_r, "no NetworkPolicy limits who reaches it")
    for n in policies:
        for rule in n["spec"].get("ingress") or []:
            for peer in rule.get("from") or []:
                sel = (peer.get("podSelector") or {}).get("matchLabels")
                if not selects(sel, pod_labels_of(gw_dep)) or peer.keys() - {"podSelector"}:
                    problem(where, f"NetworkPolicy {name(n)} admits more than the gateway's pods: {peer}")
            for p in rule.get("ports") or []:
                if p.get("port") not in rports and p.get("port") not in rports.values():
                    problem(where, f"NetworkPolicy {name(n)} opens port {p.get('port')}, which Redis does not expose")


NEWER_SECTIONS = {  # a config section the daemon gained lately, and a minimal use of it
    "state": "state: {backend: memory}\n",
    "cache": "cache: {models: [m]}\n",
}
_known_sections = {}


def knows_section(switchyard_bin, section):
    """Whether this binary's `switchyard check` accepts `section` (probed once per binary)."""
    if (switchyard_bin, section) not in _known_sections:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "gateway.yaml"
            path.write_text("upstreams: [{name: mock, dialect: mock, models: [m]}]\n" + NEWER_SECTIONS[section])
            run_env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
            _known_sections[switchyard_bin, section] = run_check(switchyard_bin, path, run_env).returncode == 0
    return _known_sections[switchyard_bin, section]


def check_config(text, env, where, switchyard_bin):
    """`switchyard check` on the config, with the container's env (secrets as placeholders)."""
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    for k, v in env.items():
        run_env[k] = "placeholder" if v == "<from secret>" else v
    config = yaml.safe_load(text) or {}
    newer = [k for k in NEWER_SECTIONS if k in config and not knows_section(switchyard_bin, k)]
    if newer:
        print(f"NOTE {where}: this switchyard does not know {', '.join(newer)}: yet; "
              f"`switchyard check` ran on the config without {' and '.join(newer)}")
        for k in newer:
            del config[k]
        text = yaml.safe_dump(config, sort_keys=False)
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
