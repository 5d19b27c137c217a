"""A small kustomize, enough for deploy/: `resources` (files and directories), `namespace`,
`images`, and `patches` (strategic merge, or JSON 6902 with a `target` of kind and name regex).
Anything else in a kustomization.yaml is refused, so the overlays stay this simple and the
rendering here stays what `kubectl kustomize` produces."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml

SUPPORTED_KEYS = {"apiVersion", "kind", "namespace", "resources", "images", "patches"}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}


def load_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=_Loader) if doc]


def render(directory: Path) -> list[dict]:
    """Objects of the kustomization in `directory`, like `kubectl kustomize directory`."""
    spec = yaml.load((directory / "kustomization.yaml").read_text(), Loader=_Loader)
    unknown = set(spec) - SUPPORTED_KEYS
    if unknown:
        raise ValueError(f"{directory}/kustomization.yaml uses {sorted(unknown)}, which this renderer does not")
    objects: list[dict] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        objects += render(path) if path.is_dir() else load_documents(path)
    for patch in spec.get("patches", []):
        apply_patch_file(objects, directory / patch["path"], patch.get("target"))
    if spec.get("namespace"):
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED_KINDS:
                obj["metadata"]["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        set_image(objects, image)
    return objects


def _matches(obj: dict, target: dict) -> bool:
    if "kind" in target and obj["kind"] != target["kind"]:
        return False
    return "name" not in target or re.fullmatch(target["name"], obj["metadata"]["name"]) is not None


def apply_patch_file(objects: list[dict], path: Path, target: dict | None) -> None:
    documents = list(yaml.load_all(path.read_text(), Loader=_Loader))
    if len(documents) == 1 and isinstance(documents[0], list):  # JSON 6902
        if not target:
            raise ValueError(f"{path}: a JSON 6902 patch needs a target")
        chosen = [o for o in objects if _matches(o, target)]
        if not chosen:
            raise ValueError(f"{path}: target {target} matches nothing")
        for obj in chosen:
            for operation in documents[0]:
                json6902(obj, operation)
        return
    for patch in documents:
        if not patch:
            continue
        selector = target or {"kind": patch["kind"], "name": re.escape(patch["metadata"]["name"])}
        chosen = [o for o in objects if _matches(o, selector)]
        if not chosen:
            raise ValueError(f"{path}: {patch['kind']}/{patch['metadata']['name']} matches nothing")
        for obj in chosen:
            merged = strategic_merge(obj, {k: v for k, v in patch.items() if k != "metadata"})
            obj.clear()
            obj.update(merged)


def strategic_merge(base, patch):
    """Maps merge key by key; lists of named items (containers, env, volumes) merge by name; other
    lists are replaced; a null value deletes the key."""
    if isinstance(base, dict) and isinstance(patch, dict):
        result = dict(base)
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = strategic_merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return result
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        result = [copy.deepcopy(item) for item in base]
        positions = {item["name"]: i for i, item in enumerate(result)}
        for item in patch:
            if item["name"] in positions:
                result[positions[item["name"]]] = strategic_merge(result[positions[item["name"]]], item)
            else:
                result.append(copy.deepcopy(item))
        return result
    return copy.deepcopy(patch)


def _named(items: list) -> bool:
    return all(isinstance(i, dict) and "name" in i for i in items)


def json6902(obj: dict, operation: dict) -> None:
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
    node = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    op = operation["op"]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, copy.deepcopy(operation["value"]))
        elif op == "replace":
            node[index] = copy.deepcopy(operation["value"])
        elif op == "remove":
            del node[index]
        else:
            raise ValueError(f"unsupported op {op}")
        return
    if op in ("add", "replace"):
        if op == "replace" and last not in node:
            raise ValueError(f"replace of missing {operation['path']}")
        node[last] = copy.deepcopy(operation["value"])
    elif op == "remove":
        del node[last]
    else:
        raise ValueError(f"unsupported op {op}")


def _split_image(image: str) -> tuple[str, str | None]:
    name, _, tag = image.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return image, None


def set_image(objects: list[dict], image: dict) -> None:
    for obj in objects:
        for spec in pod_specs(obj):
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                name, tag = _split_image(container["image"])
                if name != image["name"]:
                    continue
                new_tag = image.get("newTag", tag)
                container["image"] = image.get("newName", name) + (f":{new_tag}" if new_tag else "")


def pod_specs(obj: dict) -> list[dict]:
    """The pod specs inside a workload object (Deployment, StatefulSet, Job, ...)."""
    if obj["kind"] == "Pod":
        return [obj["spec"]]
    if obj["kind"] == "CronJob":
        return [obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    template = obj.get("spec", {}).get("template") if isinstance(obj.get("spec"), dict) else None
    return [template["spec"]] if template else []
