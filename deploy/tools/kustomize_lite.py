"""A small, strict re-implementation of the part of `kustomize build` that
deploy/k8s uses, so that the manifests can be rendered where no kustomize binary
is available (it cannot be downloaded here; `kubectl kustomize` is used to
cross-check this renderer when kubectl happens to be installed).

Supported kustomization fields (anything else is an error, never ignored):
  resources (files and directories), namespace, labels (includeSelectors: false,
  optional includeTemplates), images (newName / newTag / digest), and patches
  given by `path` or inline `patch`, either strategic-merge (no target, matched
  by the patch's kind and name) or JSON 6902 (with a `target`).

Transformers run in kustomize's order: patches, namespace, labels, images.
Strategic merge follows the Kubernetes rules for the fields used here: maps merge
key by key (null deletes), lists of containers / env / volumes / ports merge by
their merge key, every other list is replaced (as for custom resources, which
get a JSON merge patch).

Usage: python3 kustomize_lite.py DIR  -> prints the rendered YAML stream.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

KNOWN_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}

# Kinds that have no namespace (only those that could plausibly appear here).
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}

# Strategic-merge keys of the Kubernetes lists that are merged instead of replaced,
# by field name (built-in kinds only).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "tolerations": None,  # replaced
}
PORT_LISTS = {"ports"}  # containerPort (containers) or port (Services)

BUILTIN_GROUPS = {
    "v1",
    "apps/v1",
    "batch/v1",
    "autoscaling/v2",
    "policy/v1",
    "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
}


class KustomizeError(Exception):
    pass


def load_docs(path: Path) -> list[dict]:
    with path.open() as handle:
        docs = [doc for doc in yaml.safe_load_all(handle) if doc is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "metadata" not in doc:
            raise KustomizeError(f"{path}: every document needs kind and metadata")
    return docs


def resource_id(resource: dict) -> tuple[str, str, str]:
    meta = resource.get("metadata", {})
    return resource["kind"], meta.get("namespace", ""), meta["name"]


# ---------------------------------------------------------------- strategic merge


def _merge_list(original: list, patch: list, field: str, builtin: bool) -> list:
    key = None
    if builtin:
        if field in PORT_LISTS:
            sample = (patch or original or [{}])[0]
            key = "containerPort" if isinstance(sample, dict) and "containerPort" in sample else "port"
        else:
            key = MERGE_KEYS.get(field)
    if key is None or not all(isinstance(item, dict) and key in item for item in original + patch):
        return copy.deepcopy(patch)
    merged = [copy.deepcopy(item) for item in original]
    index = {item[key]: position for position, item in enumerate(merged)}
    for item in patch:
        if "$patch" in item:
            raise KustomizeError("strategic-merge directives ($patch) are not supported")
        if item[key] in index:
            position = index[item[key]]
            merged[position] = _merge_map(merged[position], item, builtin)
        else:
            merged.append(copy.deepcopy(item))
    return merged


def _merge_map(original: dict, patch: dict, builtin: bool) -> dict:
    result = copy.deepcopy(original)
    for key, value in patch.items():
        if isinstance(key, str) and key.startswith("$"):
            raise KustomizeError(f"strategic-merge directive {key} is not supported")
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge_map(result[key], value, builtin)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, key, builtin)
        else:
            result[key] = copy.deepcopy(value)
    return result


def strategic_merge(resource: dict, patch: dict) -> dict:
    builtin = resource.get("apiVersion") in BUILTIN_GROUPS
    return _merge_map(resource, patch, builtin)


# ---------------------------------------------------------------- JSON 6902


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"JSON pointer must start with '/': {path}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _walk(document: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(document, list):
            document = document[int(part)]
        elif isinstance(document, dict):
            document = document[part]
        else:
            raise KeyError(part)
    return document


def json6902(resource: dict, operations: list[dict]) -> dict:
    result = copy.deepcopy(resource)
    for operation in operations:
        op, parts = operation.get("op"), _pointer(operation.get("path", ""))
        try:
            parent = _walk(result, parts[:-1])
            last = parts[-1]
            if op in ("replace", "add"):
                value = copy.deepcopy(operation["value"])
                if isinstance(parent, list):
                    if last == "-":
                        parent.append(value)
                    elif op == "add":
                        parent.insert(int(last), value)
                    else:
                        parent[int(last)] = value
                else:
                    if op == "replace" and last not in parent:
                        raise KeyError(last)
                    parent[last] = value
            elif op == "remove":
                if isinstance(parent, list):
                    del parent[int(last)]
                else:
                    del parent[last]
            elif op == "test":
                if _walk(result, parts) != operation.get("value"):
                    raise KustomizeError(f"test failed at {operation['path']}")
            else:
                raise KustomizeError(f"JSON patch op {op!r} is not supported")
        except (KeyError, IndexError, ValueError) as error:
            raise KustomizeError(f"JSON patch {op} {operation.get('path')}: no such path ({error})") from error
    return result


def _matches(resource: dict, target: dict) -> bool:
    unsupported = set(target) - {"group", "version", "kind", "name", "namespace"}
    if unsupported:
        raise KustomizeError(f"patch target fields not supported: {sorted(unsupported)}")
    api_version = resource.get("apiVersion", "")
    group, _, version = api_version.rpartition("/")
    checks = {
        "group": group,
        "version": version,
        "kind": resource.get("kind"),
        "name": resource["metadata"].get("name"),
        "namespace": resource["metadata"].get("namespace", ""),
    }
    return all(checks[field] == value for field, value in target.items())


def apply_patches(resources: list[dict], patches: list[dict], base: Path) -> list[dict]:
    for entry in patches:
        if set(entry) - {"path", "patch", "target"}:
            raise KustomizeError(f"patch fields not supported: {sorted(set(entry) - {'path', 'patch', 'target'})}")
        text = (base / entry["path"]).read_text() if "path" in entry else entry["patch"]
        docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
        if "target" in entry:
            if len(docs) != 1 or not isinstance(docs[0], list):
                raise KustomizeError("a targeted patch must be one JSON 6902 operation list")
            hits = [i for i, resource in enumerate(resources) if _matches(resource, entry["target"])]
            if not hits:
                raise KustomizeError(f"patch target {entry['target']} matches nothing")
            for i in hits:
                resources[i] = json6902(resources[i], docs[0])
            continue
        for doc in docs:
            if isinstance(doc, list):
                raise KustomizeError("a JSON 6902 patch needs a target")
            kind, name = doc["kind"], doc["metadata"]["name"]
            namespace = doc["metadata"].get("namespace")
            hits = [
                i
                for i, resource in enumerate(resources)
                if resource["kind"] == kind
                and resource["metadata"]["name"] == name
                and (namespace is None or resource["metadata"].get("namespace") == namespace)
            ]
            if len(hits) != 1:
                raise KustomizeError(f"patch for {kind}/{name} matches {len(hits)} resources")
            resources[hits[0]] = strategic_merge(resources[hits[0]], doc)
    return resources


# ---------------------------------------------------------------- other transformers


def set_namespace(resources: list[dict], namespace: str) -> None:
    for resource in resources:
        if resource["kind"] not in CLUSTER_SCOPED:
            resource["metadata"]["namespace"] = namespace


def add_labels(resources: list[dict], entries: list[dict]) -> None:
    for entry in entries:
        if set(entry) - {"pairs", "includeSelectors", "includeTemplates"}:
            raise KustomizeError(f"labels fields not supported: {sorted(entry)}")
        if entry.get("includeSelectors"):
            raise KustomizeError("labels.includeSelectors: true is not supported")
        pairs = entry.get("pairs", {})
        for resource in resources:
            resource["metadata"].setdefault("labels", {}).update(pairs)
            if entry.get("includeTemplates"):
                for template in _pod_templates(resource):
                    template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _pod_templates(resource: dict) -> list[dict]:
    spec = resource.get("spec", {})
    if resource["kind"] == "CronJob":
        return [spec.get("jobTemplate", {}).get("spec", {}).get("template", {})]
    if "template" in spec:
        return [spec["template"]]
    return []


def _split_image(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


def set_images(resources: list[dict], images: list[dict]) -> None:
    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    for container in value:
                        rewrite(container)
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    def rewrite(container: dict) -> None:
        image = container.get("image")
        if not isinstance(image, str):
            return
        for rule in images:
            if set(rule) - {"name", "newName", "newTag", "digest"}:
                raise KustomizeError(f"images fields not supported: {sorted(rule)}")
            if _split_image(image) != rule["name"]:
                continue
            name = rule.get("newName", rule["name"])
            if "digest" in rule:
                container["image"] = f"{name}@{rule['digest']}"
            elif "newTag" in rule:
                container["image"] = f"{name}:{rule['newTag']}"
            else:
                tail = image[len(_split_image(image)) :]
                container["image"] = name + tail

    for resource in resources:
        visit(resource.get("spec", {}))


# ---------------------------------------------------------------- build


def build(directory: Path) -> list[dict]:
    directory = Path(directory)
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KNOWN_FIELDS
    if unknown:
        raise KustomizeError(f"{directory}/kustomization.yaml: unsupported fields {sorted(unknown)}")
    resources: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        resources.extend(build(path) if path.is_dir() else load_docs(path))
    seen: set[tuple[str, str, str]] = set()
    for resource in resources:
        rid = resource_id(resource)
        if rid in seen:
            raise KustomizeError(f"{directory}: duplicate resource {rid}")
        seen.add(rid)
    resources = apply_patches(resources, kustomization.get("patches", []), directory)
    if "namespace" in kustomization:
        set_namespace(resources, kustomization["namespace"])
    add_labels(resources, kustomization.get("labels", []))
    set_images(resources, kustomization.get("images", []))
    return resources


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        resources = build(Path(sys.argv[1]))
    except KustomizeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    yaml.safe_dump_all(resources, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
