"""deploy/ is checked by parsing, not by running (no container engine in CI): these tests load
the Compose file, the Kubernetes manifests and the Dockerfile and check that they are wired to
the code as it is: the variables the settings read, the modules, the ports, the probe paths."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices
from sqlalchemy.engine import make_url
from temporalio.common import SearchAttributeIndexedValueType

from activities.mcp_config import load_mcp_config
from api.app import create_app
from api.loopback import is_loopback
from worker.connection import ENVIRONMENT_VARIABLES, TemporalConnection
from worker.health import CHECK_TIMEOUT_SECONDS, WorkerHealth
from worker.mcp_oauth import CALLBACK_PATH
from worker.settings import Settings
from worker.store.database import async_url
from worker.store.sealing import Sealer, SecretsKeyError
from workflows import metrics
from workflows.contract import SEARCH_ATTRIBUTES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
APP_SERVICES = {"worker": "worker", "api": "api"}  # compose service -> module it runs
APP_DEPLOYMENTS = {"orch-worker": "worker", "orch-api": "api"}  # k8s Deployment -> module it runs
MIGRATE = ["python", "-m", "worker.store", "upgrade"]  # the store's migration (`orch db upgrade`)
STORE_SETTINGS = ("ORCH_DATABASE_URL", "ORCH_SECRETS_KEY")


# --- loading ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def k8s() -> list[dict[str, Any]]:
    """Every object of every file that kustomization.yaml lists."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        objects.extend(doc for doc in yaml.safe_load_all((K8S / resource).read_text()) if doc)
    return objects


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def k8s_object(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(objects: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    return k8s_object(objects, "Deployment", deployment)["spec"]["template"]["spec"]


def container(objects: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    containers = k8s_object(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment}: expected one container"
    return containers[0]


def k8s_config(objects: list[dict[str, Any]]) -> dict[str, str]:
    return k8s_object(objects, "ConfigMap", "orch-config")["data"]


def resolved_env(objects: list[dict[str, Any]], spec: dict[str, Any]) -> dict[str, str]:
    """A container's environment as Kubernetes gives it: envFrom's ConfigMaps and Secrets, then
    `env` (literal values, secretKeyRef, configMapKeyRef), each source looked up in the manifests."""
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        if "configMapRef" in source:
            env |= k8s_object(objects, "ConfigMap", source["configMapRef"]["name"])["data"]
        if "secretRef" in source:
            env |= k8s_object(objects, "Secret", source["secretRef"]["name"])["stringData"]
    for entry in spec.get("env", []):
        source = entry.get("valueFrom", {})
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[entry["name"]] = k8s_object(objects, "Secret", ref["name"])["stringData"][ref["key"]]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[entry["name"]] = k8s_object(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
        else:
            env[entry["name"]] = entry["value"]
    return env


def command_module(command: str | list[str]) -> str:
    """`python -m X` -> X."""
    argv = shlex.split(command) if isinstance(command, str) else command
    assert argv[:2] == ["python", "-m"] and len(argv) == 3, f"not `python -m <module>`: {argv}"
    return argv[2]


def settings_env_names() -> set[str]:
    """The environment variable names Settings reads (validation_alias: a str or AliasChoices),
    and the Temporal connection's (the SDK's environment configuration)."""
    names: set[str] = set(ENVIRONMENT_VARIABLES)
    prefix = Settings.model_config.get("env_prefix", "")
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def container_port(mapping: str) -> int:
    """ "8000-8001:8000" -> 8000 (the container side of a Compose port mapping)."""
    return int(str(mapping).rsplit(":", 1)[-1].split("/")[0])


def host_ports(mapping: str) -> range:
    host = str(mapping).rsplit(":", 1)[0].rsplit(":", 1)[-1]  # drop an optional host IP
    first, _, last = host.partition("-")
    return range(int(first), int(last or first) + 1)


def api_served_paths() -> set[str]:
    return set(create_app(Settings()).openapi()["paths"])


# --- tests ------------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_compose_app_env_names_are_read_by_settings(compose: dict[str, Any]) -> None:
    known = settings_env_names()
    for service in [*APP_SERVICES, "migrate"]:
        unknown = set(compose["services"][service]["environment"]) - known
        assert not unknown, f"compose service {service} sets variables Settings does not read: {unknown}"


def test_k8s_env_names_are_read_by_settings(k8s: list[dict[str, Any]]) -> None:
    known = settings_env_names()
    names = set(k8s_config(k8s)) | set(k8s_object(k8s, "Secret", "orch-secrets")["stringData"])
    for deployment in APP_DEPLOYMENTS:
        pod = pod_spec(k8s, deployment)
        for spec in [*pod["containers"], *pod.get("initContainers", [])]:
            names |= {env["name"] for env in spec.get("env", [])}
    assert not names - known, f"k8s sets variables Settings does not read: {names - known}"


def test_k8s_env_sources_exist(k8s: list[dict[str, Any]]) -> None:
    """envFrom, secretKeyRef and configMap volumes name objects (and keys) that the manifests define."""
    for deployment in APP_DEPLOYMENTS:
        pod = pod_spec(k8s, deployment)
        for spec in [*pod["containers"], *pod.get("initContainers", [])]:
            resolved_env(k8s, spec)  # every source and key is there
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                k8s_object(k8s, "ConfigMap", volume["configMap"]["name"])


def test_compose_and_k8s_run_the_right_existing_module(compose: dict[str, Any], k8s: list[dict[str, Any]]) -> None:
    runs = {f"compose {s}": (compose["services"][s]["command"], m) for s, m in APP_SERVICES.items()}
    runs |= {f"k8s {d}": (container(k8s, d)["command"], m) for d, m in APP_DEPLOYMENTS.items()}
    for where, (command, expected) in runs.items():
        module = command_module(command)
        assert module == expected, f"{where} runs {module}, expected {expected}"
        assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{where}: no {module}/__main__.py"


def test_dockerfile_cmd_runs_an_existing_module(dockerfile: list[tuple[str, str]]) -> None:
    cmds = [json.loads(args) for instruction, args in dockerfile if instruction == "CMD"]
    assert cmds, "Dockerfile has no CMD"
    module = command_module(cmds[-1])
    assert module in APP_SERVICES.values()
    assert importlib.util.find_spec(f"{module}.__main__") is not None


def test_dockerfile_runs_as_non_root(dockerfile: list[tuple[str, str]]) -> None:
    users = [args.split(":")[0] for instruction, args in dockerfile if instruction == "USER"]
    assert users and users[-1] not in {"root", "0"}


def test_dockerfile_installs_the_example_stdio_mcp_servers(dockerfile: list[tuple[str, str]]) -> None:
    installs = " ".join(args for instruction, args in dockerfile if instruction == "RUN" and "pip install" in args)
    config = load_mcp_config(DEPLOY / "mcp.json")
    for name, server in config.servers.items():
        if server.transport == "stdio":
            assert server.command in installs, f"MCP server {name}: {server.command} is not installed in the image"


def test_compose_api_ports_agree(compose: dict[str, Any], dockerfile: list[tuple[str, str]]) -> None:
    api = compose["services"]["api"]
    port = int(api["environment"]["ORCH_API_PORT"])
    assert api["environment"]["ORCH_API_HOST"] == "0.0.0.0"
    assert [container_port(p) for p in api["ports"]] == [port]
    healthcheck_urls = re.findall(r"https?://[^'\" ]+", " ".join(api["healthcheck"]["test"]))
    assert [urlsplit(url).port for url in healthcheck_urls] == [port]
    exposed = [
        int(p.split("/")[0]) for instruction, args in dockerfile if instruction == "EXPOSE" for p in args.split()
    ]
    assert port in exposed


def test_compose_publishes_a_host_port_per_api_replica(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    (mapping,) = api["ports"]
    assert len(host_ports(mapping)) >= api["deploy"]["replicas"]


def test_k8s_api_ports_agree(k8s: list[dict[str, Any]]) -> None:
    api = container(k8s, "orch-api")
    env = {e["name"]: e.get("value") for e in api["env"]}
    port = int(env["ORCH_API_PORT"])
    assert env["ORCH_API_HOST"] == "0.0.0.0"
    assert {p["name"]: p["containerPort"] for p in api["ports"]}["http"] == port
    assert api["readinessProbe"]["httpGet"]["port"] == port
    assert api["livenessProbe"]["httpGet"]["port"] == port
    service = k8s_object(k8s, "Service", "orch-api")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port]
    pod_labels = k8s_object(k8s, "Deployment", "orch-api")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_probe_paths_are_served_by_the_api(compose: dict[str, Any], k8s: list[dict[str, Any]]) -> None:
    api = container(k8s, "orch-api")
    paths = {api["readinessProbe"]["httpGet"]["path"], api["livenessProbe"]["httpGet"]["path"]}
    healthcheck = " ".join(compose["services"]["api"]["healthcheck"]["test"])
    paths |= {urlsplit(url).path for url in re.findall(r"https?://[^'\" ]+", healthcheck)}
    assert paths, "no probe paths found"
    assert paths <= api_served_paths()


def test_readiness_means_temporal_reachable_and_liveness_means_process_up(
    compose: dict[str, Any], k8s: list[dict[str, Any]]
) -> None:
    api = container(k8s, "orch-api")
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"  # a Temporal outage must not restart pods
    assert "/readyz" in " ".join(compose["services"]["api"]["healthcheck"]["test"])


def test_two_replicas_of_worker_and_api(compose: dict[str, Any], k8s: list[dict[str, Any]]) -> None:
    for service in APP_SERVICES:
        assert compose["services"][service]["deploy"]["replicas"] == 2, service
    for deployment in APP_DEPLOYMENTS:
        assert k8s_object(k8s, "Deployment", deployment)["spec"]["replicas"] == 2, deployment


def test_hpas_target_the_deployments(k8s: list[dict[str, Any]]) -> None:
    hpas = [o for o in k8s if o["kind"] == "HorizontalPodAutoscaler"]
    assert all(h["apiVersion"] == "autoscaling/v2" for h in hpas)
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas} == set(APP_DEPLOYMENTS)
    for hpa in hpas:
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        assert hpa["spec"]["minReplicas"] == k8s_object(k8s, "Deployment", target["name"])["spec"]["replicas"]
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


def test_k8s_worker_grace_period_exceeds_graceful_shutdown(k8s: list[dict[str, Any]]) -> None:
    shutdown = float(k8s_config(k8s)["ORCH_GRACEFUL_SHUTDOWN_SECONDS"])
    grace = k8s_object(k8s, "Deployment", "orch-worker")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > shutdown


def test_compose_worker_stop_grace_period_exceeds_graceful_shutdown(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    shutdown = float(worker["environment"]["ORCH_GRACEFUL_SHUTDOWN_SECONDS"])
    match = re.fullmatch(r"(\d+)s", worker["stop_grace_period"])
    assert match, "stop_grace_period should be written in seconds, e.g. 45s"
    assert int(match.group(1)) > shutdown


def test_compose_registers_the_search_attributes_as_keyword(compose: dict[str, Any]) -> None:
    script = " ".join(compose["services"]["temporal-setup"]["command"])
    create = re.search(r"temporal operator search-attribute create ([^\n]*)", script)
    assert create, "temporal-setup does not create a search attribute"
    for key in SEARCH_ATTRIBUTES:
        assert key.indexed_value_type == SearchAttributeIndexedValueType.KEYWORD
        assert f"--name {key.name} " in create.group(1) + " "
    assert "--type Keyword" in create.group(1)


def test_api_listening_beyond_loopback_gets_api_keys(compose: dict[str, Any], k8s: list[dict[str, Any]]) -> None:
    api = compose["services"]["api"]["environment"]
    assert not is_loopback(api["ORCH_API_HOST"]) and api["ORCH_API_KEYS"].startswith("${ORCH_API_KEYS:?")
    [container] = k8s_object(k8s, "Deployment", "orch-api")["spec"]["template"]["spec"]["containers"]
    env = {entry["name"]: entry for entry in container["env"]}
    assert not is_loopback(env["ORCH_API_HOST"]["value"])
    assert env["ORCH_API_KEYS"]["valueFrom"]["secretKeyRef"] == {"name": "orch-secrets", "key": "ORCH_API_KEYS"}


def test_compose_apps_start_after_the_search_attribute_setup(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["temporal-setup"]["depends_on"]["temporal"]["condition"] == "service_healthy"
    assert "healthcheck" in services["temporal"]
    for service in APP_SERVICES:
        condition = services[service]["depends_on"]["temporal-setup"]["condition"]
        assert condition == "service_completed_successfully", service


def test_compose_apps_reach_temporal_by_service_name(compose: dict[str, Any]) -> None:
    for service in APP_SERVICES:
        host, _, port = compose["services"][service]["environment"]["TEMPORAL_ADDRESS"].partition(":")
        assert host in compose["services"] and port == "7233", service


def test_compose_worker_mounts_the_mcp_config_it_names(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    mounts = {target: source for source, target, *_ in (v.split(":") for v in worker["volumes"])}
    source = mounts.get(worker["environment"]["ORCH_MCP_CONFIG"])
    assert source is not None, "ORCH_MCP_CONFIG is not a mounted file"
    assert (DEPLOY / source).resolve() == (DEPLOY / "mcp.json").resolve()


def test_k8s_worker_mounts_the_mcp_config_it_names(k8s: list[dict[str, Any]]) -> None:
    path = Path(k8s_config(k8s)["ORCH_MCP_CONFIG"])
    pod = k8s_object(k8s, "Deployment", "orch-worker")["spec"]["template"]["spec"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if Path(m["mountPath"]) == path.parent]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert path.name in k8s_object(k8s, "ConfigMap", volume["configMap"]["name"])["data"]


@pytest.mark.parametrize("source", ["deploy/mcp.json", "k8s ConfigMap orch-mcp-config"])
def test_mcp_configs_load_with_the_project_loader(source: str, k8s: list[dict[str, Any]], tmp_path: Path) -> None:
    if source == "deploy/mcp.json":
        path = DEPLOY / "mcp.json"
    else:
        path = tmp_path / "mcp.json"
        path.write_text(k8s_object(k8s, "ConfigMap", "orch-mcp-config")["data"]["mcp.json"])
    config = load_mcp_config(path)
    assert config.enabled_servers(), f"{source} configures no MCP server"


# --- Temporal Cloud (API key or mTLS) ---------------------------------------------------------

CLOUD_WAYS = ("api-key", "mtls")


def _substituted(value: str) -> str:
    """A Compose value with `${NAME:?message}` / `${NAME}` filled in as a user would."""
    return re.sub(r"\$\{([A-Z_]+)[^}]*\}", lambda m: f"<{m.group(1).lower()}>", str(value))


def _loads_with_files(env: dict[str, str], mounts: dict[str, Path]) -> TemporalConnection:
    """`env` as the SDK reads it, with every file it names created under the mounted directory."""
    local = dict(env)
    for name, value in env.items():
        for mount_path, directory in mounts.items():
            if name.endswith("_PATH") and value.startswith(mount_path + "/"):
                file = directory / value.removeprefix(mount_path + "/")
                file.write_text("PEM")
                local[name] = str(file)
        assert not (name.endswith("_PATH") and local[name] == value), f"{name}={value} is not in a mounted directory"
    return TemporalConnection.from_environment(local)


@pytest.mark.parametrize("way", CLOUD_WAYS)
def test_compose_temporal_cloud_overrides_connect_the_worker_and_the_api(
    way: str, compose: dict[str, Any], tmp_path: Path
) -> None:
    override = yaml.safe_load((DEPLOY / f"docker-compose.temporal-cloud-{way}.yml").read_text())
    assert set(override["services"]) == set(APP_SERVICES) <= set(compose["services"])
    for service, spec in override["services"].items():
        env = {name: _substituted(value) for name, value in spec["environment"].items()}
        assert set(env) <= ENVIRONMENT_VARIABLES and {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"} <= set(env), service
        mounts = {}
        for volume in spec.get("volumes", []):
            source, target, *_ = volume.split(":")
            assert (DEPLOY / source).resolve().parent == DEPLOY, f"{service}: mounts {source} from deploy/"
            mounts[target] = tmp_path
        described = _loads_with_files(env, mounts).describe()
        assert "TLS" in described and ("API key" if way == "api-key" else "client certificate") in described


@pytest.mark.parametrize("way", CLOUD_WAYS)
def test_k8s_temporal_cloud_overlays_patch_the_base(way: str, k8s: list[dict[str, Any]], tmp_path: Path) -> None:
    overlay = K8S / f"temporal-cloud-{way}"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../"]
    patches = [
        doc for patch in kustomization["patches"] for doc in yaml.safe_load_all((overlay / patch["path"]).read_text())
    ]
    config = dict(k8s_config(k8s))
    for patch in patches:
        k8s_object(k8s, patch["kind"], patch["metadata"]["name"])  # patches only what the base has
        if patch["kind"] == "ConfigMap":
            assert set(patch["data"]) <= ENVIRONMENT_VARIABLES
            config |= patch["data"]
    for deployment in APP_DEPLOYMENTS:
        [patch] = [p for p in patches if p["kind"] == "Deployment" and p["metadata"]["name"] == deployment]
        [patched] = patch["spec"]["template"]["spec"]["containers"]
        assert patched["name"] == container(k8s, deployment)["name"]
        env = dict(config)
        for variable in patched.get("env", []):
            assert variable["name"] in ENVIRONMENT_VARIABLES and variable["valueFrom"]["secretKeyRef"]["key"]
            env[variable["name"]] = "from-a-secret"
        volumes = {volume["name"]: volume for volume in patch["spec"]["template"]["spec"].get("volumes", [])}
        mounts = {}
        for mount in patched.get("volumeMounts", []):
            secret = volumes[mount["name"]]["secret"]["secretName"]
            assert secret == "temporal-client-tls"
            mounts[mount["mountPath"]] = tmp_path
        described = _loads_with_files(env, mounts).describe()
        assert "TLS" in described and ("API key" if way == "api-key" else "client certificate") in described
        if way == "mtls":  # `kubectl create secret tls` names its keys tls.crt and tls.key
            assert {Path(env[name]).name for name in env if name.startswith("TEMPORAL_TLS_CLIENT_")} == {
                "tls.crt",
                "tls.key",
            }


# --- The worker's health endpoint -----------------------------------------------------------


def _worker_health_paths() -> set[str]:
    """The paths the worker's health app serves (its handlers need a worker only when called)."""
    return {route.path for route in WorkerHealth.__new__(WorkerHealth).app().routes}


def test_worker_probes_use_its_health_endpoint(compose: dict[str, Any], k8s: list[dict[str, Any]]) -> None:
    worker = container(k8s, "orch-worker")
    port = int({env["name"]: env["value"] for env in worker["env"]}["ORCH_HEALTH_PORT"])
    assert {p["name"]: p["containerPort"] for p in worker["ports"]}["health"] == port
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}  # not tied to Temporal or MCP
    # The readiness check asks Temporal and the MCP servers, each within CHECK_TIMEOUT_SECONDS.
    assert worker["readinessProbe"]["timeoutSeconds"] > 2 * CHECK_TIMEOUT_SECONDS
    service = compose["services"]["worker"]
    test = " ".join(service["healthcheck"]["test"])
    assert f"localhost:{service['environment']['ORCH_HEALTH_PORT']}/readyz" in test
    paths = {urlsplit(url).path for url in re.findall(r"https?://[^'\" ]+", test)}
    assert paths | {"/healthz", "/readyz"} <= _worker_health_paths()


# --- Metrics: Prometheus scraping and the Grafana dashboard -----------------------------------

DASHBOARD = DEPLOY / "grafana" / "orchestrations-dashboard.json"


def dashboard_metric_names() -> set[str]:
    """The metrics the dashboard's queries read (histogram series named by their metric)."""
    exprs = [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]
    names = {name for expr in exprs for name in re.findall(r"\b((?:orch|temporal)_[a-z_]+)", expr)}
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in names}


def test_the_dashboard_reads_the_services_metrics_by_their_names() -> None:
    defined = {value for name, value in vars(metrics).items() if name.isupper() and isinstance(value, str)}
    used = dashboard_metric_names()
    assert {name for name in used if name.startswith("orch_")} == defined, "every service metric, no other"
    assert any(name.startswith("temporal_") for name in used)


def test_compose_scrapes_every_replica_of_the_worker_and_the_api(compose: dict[str, Any]) -> None:
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {sd["names"][0]: sd["port"] for job in prometheus["scrape_configs"] for sd in job["dns_sd_configs"]}
    assert set(targets) == set(APP_SERVICES)
    for service, port in targets.items():
        assert int(compose["services"][service]["environment"]["ORCH_METRICS_PORT"]) == port, service
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes
    grafana = compose["services"]["grafana"]["volumes"]
    mounted = {volume.split(":")[0] for volume in grafana}
    assert "./grafana/orchestrations-dashboard.json" in mounted and "./grafana/provisioning" in mounted
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/orchestrations.yml").read_text())
    dashboard_dir = provider["providers"][0]["options"]["path"]
    assert any(volume.split(":")[1].startswith(dashboard_dir + "/") for volume in grafana)


def test_k8s_pods_are_annotated_for_scraping_on_the_metrics_port(k8s: list[dict[str, Any]]) -> None:
    port = int(k8s_config(k8s)["ORCH_METRICS_PORT"])
    for deployment in APP_DEPLOYMENTS:
        annotations = k8s_object(k8s, "Deployment", deployment)["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics",
        }
        assert {p["name"]: p["containerPort"] for p in container(k8s, deployment)["ports"]}["metrics"] == port


# --- The store: its database, the secrets key, its migration, the public URL -------------------


def compose_value(value: str) -> str:
    """A Compose value as Compose fills it in with no host variable set: `${NAME:-default}` is
    the default; `${NAME:?message}` (required) reads `<name>`."""
    value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
    return _substituted(value)


def test_every_compose_app_gets_the_store_and_the_secrets_key(compose: dict[str, Any]) -> None:
    services = compose["services"]
    url = services["migrate"]["environment"]["ORCH_DATABASE_URL"]
    for service in APP_SERVICES:
        env = services[service]["environment"]
        assert env["ORCH_DATABASE_URL"] == url, f"{service} and the migration use one store"
        # Required, as ORCH_API_KEYS is: Compose stops with the message when it is not set.
        assert env["ORCH_SECRETS_KEY"].startswith("${ORCH_SECRETS_KEY:?"), service
    parsed = make_url(compose_value(url))
    assert async_url(str(parsed)).startswith("postgresql+asyncpg://")
    database = services[parsed.host]["environment"]
    assert parsed.port == 5432 and "healthcheck" in services[parsed.host]
    assert (parsed.username, parsed.database) == (database["POSTGRES_USER"], database["POSTGRES_DB"])
    assert parsed.password == compose_value(database["POSTGRES_PASSWORD"])


def test_compose_migrates_the_store_before_the_apps_start(compose: dict[str, Any]) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == MIGRATE and importlib.util.find_spec("worker.store.__main__") is not None
    assert migrate["restart"] == "no", "a one-shot job"
    assert migrate["image"] == services["api"]["image"] == services["worker"]["image"]
    database = make_url(compose_value(migrate["environment"]["ORCH_DATABASE_URL"])).host
    assert migrate["depends_on"] == {database: {"condition": "service_healthy"}}
    for service in APP_SERVICES:
        assert services[service]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_compose_declares_every_named_volume(compose: dict[str, Any]) -> None:
    used = {
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "/"))
    }
    assert used == set(compose["volumes"])


@pytest.mark.parametrize("way", CLOUD_WAYS)
def test_compose_temporal_cloud_overrides_start_the_store_and_its_migration(way: str, compose: dict[str, Any]) -> None:
    """Started with --no-deps (no local Temporal), the documented command names every service
    the apps need but Temporal's, so the store is there and migrated first."""
    header = (DEPLOY / f"docker-compose.temporal-cloud-{way}.yml").read_text()
    command = re.search(r"up --build --no-deps ([a-z -]+)", header)
    assert command, "no `up --build --no-deps ...` command in the header"
    started = set(command.group(1).split())
    needed: set[str] = set()
    waiting = list(APP_SERVICES)
    while waiting:
        service = waiting.pop()
        needed.add(service)
        waiting.extend(set(compose["services"][service].get("depends_on", {})) - needed)
    temporal = {"temporal", "temporal-setup", "postgresql"}
    assert started == needed - temporal


def test_every_k8s_app_container_gets_the_store_and_the_secrets_key(k8s: list[dict[str, Any]]) -> None:
    urls = set()
    for deployment in APP_DEPLOYMENTS:
        env = resolved_env(k8s, container(k8s, deployment))
        assert set(STORE_SETTINGS) <= set(env), deployment
        urls.add(env["ORCH_DATABASE_URL"])
    (url,) = urls
    assert async_url(url).startswith("postgresql+asyncpg://")
    secret = k8s_object(k8s, "Secret", "orch-secrets")["stringData"]
    assert secret["ORCH_DATABASE_URL"] == url and "ORCH_SECRETS_KEY" in secret


def test_k8s_placeholder_secrets_key_is_refused(k8s: list[dict[str, Any]]) -> None:
    """The template's key is not a key: the pods refuse to start until it is replaced, rather
    than seal secrets with a value copied from this repository."""
    with pytest.raises(SecretsKeyError):
        Sealer(k8s_object(k8s, "Secret", "orch-secrets")["stringData"]["ORCH_SECRETS_KEY"])


def test_k8s_pods_migrate_the_store_before_their_app_starts(k8s: list[dict[str, Any]]) -> None:
    for deployment in APP_DEPLOYMENTS:
        pod = pod_spec(k8s, deployment)
        (migrate,) = pod["initContainers"]
        assert migrate["command"] == MIGRATE, deployment
        assert migrate["image"] == container(k8s, deployment)["image"], deployment
        store = resolved_env(k8s, migrate)["ORCH_DATABASE_URL"]
        assert store == resolved_env(k8s, container(k8s, deployment))["ORCH_DATABASE_URL"], deployment


def test_the_api_and_the_workers_agree_on_the_public_url(compose: dict[str, Any], k8s: list[dict[str, Any]]) -> None:
    """ORCH_PUBLIC_URL is where OAuth callbacks come back: the API serves the callback there and
    the workers register that same redirect."""
    compose_urls = {compose_value(compose["services"][s]["environment"]["ORCH_PUBLIC_URL"]) for s in APP_SERVICES}
    k8s_urls = {resolved_env(k8s, container(k8s, d))["ORCH_PUBLIC_URL"] for d in APP_DEPLOYMENTS}
    for where, urls in (("compose", compose_urls), ("k8s", k8s_urls)):
        assert len(urls) == 1, f"{where}: the API and the workers have different ORCH_PUBLIC_URLs: {urls}"
        (url,) = urls
        assert urlsplit(url).scheme in ("http", "https") and urlsplit(url).path in ("", "/"), (where, url)
    assert CALLBACK_PATH in api_served_paths()


def test_the_image_ships_the_migrations() -> None:
    """The image installs the project with `pip install .`, which ships packages (directories
    with an __init__.py): every directory of the store holding Python files must be one, or the
    image's `migrate` finds no migration to run."""
    store = DEPLOY.parent / "worker" / "store"
    directories = [store, *(path for path in store.rglob("*") if path.is_dir() and path.name != "__pycache__")]
    assert store / "migrations" / "versions" in directories
    for directory in directories:
        if any(directory.glob("*.py")):
            assert (directory / "__init__.py").exists(), f"{directory} is not a package: pip install . leaves it out"
