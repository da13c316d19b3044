#!/usr/bin/env python3
"""Checks of kedge's install manifests and examples; scripts/validate-manifests.sh drives it.

  validate_manifests.py validate --crds deploy/crds --versions 1.30,1.31 FILE...
      Every document of every FILE (multi-document YAML):
      - built-in kinds: kubernetes-validate's strict schema for each Kubernetes version (unknown
        fields are errors);
      - keda.sh kinds: the openAPIV3Schema of kedge's own CRDs in --crds, strictly (a field the
        CRD does not declare is an error: the API server would silently drop it);
      - cert-manager.io and monitoring.coreos.com kinds (optional add-ons, no schema available
        offline): apiVersion, kind, metadata.name and spec must be present;
      - any other kind is an error.

  validate_manifests.py compare [--ignore-kind KIND] A B
      A and B hold the same objects (by kind, namespace and name), field for field.

  validate_manifests.py secret-access --expect cluster-wide|restricted --namespace NS FILE
      Who may read Secrets in FILE: cluster-wide, a ClusterRole grants them and kedge runs
      unrestricted; restricted (rbac.restrictSecretAccess), no ClusterRole grants them, only
      Roles in NS do, and the Deployment sets KEDA_RESTRICT_SECRET_ACCESS=true.
"""

import argparse
import functools
import json
import sys
from pathlib import Path

import jsonschema
import yaml

ADDON_GROUPS = {"cert-manager.io", "monitoring.coreos.com"}


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def key(obj):
    meta = obj.get("metadata") or {}
    return (obj.get("kind", "?"), meta.get("namespace", ""), meta.get("name", "?"))


def show(obj):
    kind, ns, name = key(obj)
    return f"{kind} {ns + '/' if ns else ''}{name}"


def group_of(api_version):
    return api_version.split("/", 1)[0] if "/" in api_version else ""


# --- CRD openAPIV3Schema -> JSON Schema -------------------------------------------------------

def structural_to_jsonschema(s):
    """Translates a CRD's structural schema into JSON Schema, strict about unknown fields."""
    out = {}
    for k in ("type", "required", "enum", "minimum", "maximum", "exclusiveMinimum",
              "exclusiveMaximum", "pattern", "minLength", "maxLength", "minItems", "maxItems",
              "minProperties", "maxProperties", "uniqueItems", "multipleOf"):
        if k in s:
            out[k] = s[k]
    if "properties" in s:
        out["properties"] = {k: structural_to_jsonschema(v) for k, v in s["properties"].items()}
    if "items" in s:
        out["items"] = structural_to_jsonschema(s["items"])
    for k in ("anyOf", "oneOf", "allOf"):
        if k in s:
            out[k] = [structural_to_jsonschema(v) for v in s[k]]
    if "not" in s:
        out["not"] = structural_to_jsonschema(s["not"])
    additional = s.get("additionalProperties")
    if isinstance(additional, dict):
        out["additionalProperties"] = structural_to_jsonschema(additional)
    elif additional is not None:
        out["additionalProperties"] = additional
    elif "properties" in s and not s.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if s.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("allOf", []).append({"anyOf": [{"type": "integer"}, {"type": "string"}]})
    if s.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = list(out["enum"]) + [None]
    return out


def crd_schemas(crd_dir):
    """{(apiVersion, kind): JSON Schema} of every served version of every CRD in crd_dir."""
    schemas = {}
    for path in sorted(Path(crd_dir).glob("*.yaml")):
        for crd in load_docs(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for v in spec["versions"]:
                root = structural_to_jsonschema(v["schema"]["openAPIV3Schema"])
                # The API server handles these itself; CRD schemas usually leave them out.
                props = root.setdefault("properties", {})
                props.setdefault("apiVersion", {"type": "string"})
                props.setdefault("kind", {"type": "string"})
                props["metadata"] = {"type": "object"}
                schemas[(f"{spec['group']}/{v['name']}", spec["names"]["kind"])] = root
    return schemas


# --- validate ---------------------------------------------------------------------------------

def validate(args):
    import kubernetes_validate.utils as kv

    # kubernetes-validate re-reads its schema files for every object; read each once.
    kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)
    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    supported = {kv.major_minor(v) for v in kv.all_versions()}
    missing = [v for v in versions if v not in supported]
    if missing:
        print(f"kubernetes-validate has no schemas for Kubernetes {', '.join(missing)} "
              f"(it has {', '.join(sorted(supported))})")
        return 2
    crds = crd_schemas(args.crds)
    failures = 0
    checked = 0
    seen = set()
    for path in args.files:
        for obj in load_docs(path):
            fingerprint = json.dumps(obj, sort_keys=True)
            if fingerprint in seen:
                continue
            seen.add(fingerprint)
            checked += 1
            api_version = obj.get("apiVersion", "")
            kind = obj.get("kind", "")
            where = f"{path}: {show(obj)}"
            if (api_version, kind) in crds:
                errors = sorted(
                    jsonschema.Draft202012Validator(crds[(api_version, kind)]).iter_errors(obj),
                    key=lambda e: list(e.path))
                for e in errors:
                    print(f"ERROR {where}: {'.'.join(map(str, e.path)) or '(root)'}: {e.message}")
                failures += bool(errors)
                continue
            if group_of(api_version) == "keda.sh":
                print(f"ERROR {where}: {api_version} {kind} is not a kind kedge serves")
                failures += 1
                continue
            if group_of(api_version) in ADDON_GROUPS:
                meta = obj.get("metadata") or {}
                if not meta.get("name") or not isinstance(obj.get("spec"), dict):
                    print(f"ERROR {where}: needs metadata.name and spec")
                    failures += 1
                continue
            bad = False
            for version in versions:
                try:
                    kv.validate(obj, version, strict=True)
                except kv.ValidationError as e:
                    path_s = ".".join(map(str, e.path)) or "(root)"
                    print(f"ERROR {where} (Kubernetes {version}): {path_s}: {e.message}")
                    bad = True
                except kv.SchemaNotFoundError:
                    print(f"ERROR {where}: Kubernetes {version} has no {api_version} {kind}")
                    bad = True
            failures += bad
    print(f"{checked} objects checked against Kubernetes {', '.join(versions)}: "
          f"{failures} invalid")
    return 1 if failures else 0


# --- compare ----------------------------------------------------------------------------------

def compare(args):
    def index(path):
        out = {}
        for obj in load_docs(path):
            if obj.get("kind") in args.ignore_kind:
                continue
            if key(obj) in out:
                print(f"{path}: {show(obj)} appears twice")
            out[key(obj)] = obj
        return out

    a, b = index(args.a), index(args.b)
    rc = 0
    for k in sorted(set(a) - set(b)):
        print(f"only in {args.a}: {show(a[k])}")
        rc = 1
    for k in sorted(set(b) - set(a)):
        print(f"only in {args.b}: {show(b[k])}")
        rc = 1
    import difflib
    for k in sorted(set(a) & set(b)):
        if a[k] != b[k]:
            rc = 1
            print(f"{show(a[k])} differs:")
            sys.stdout.writelines(difflib.unified_diff(
                yaml.safe_dump(a[k], sort_keys=True).splitlines(True),
                yaml.safe_dump(b[k], sort_keys=True).splitlines(True),
                fromfile=args.a, tofile=args.b))
    if rc == 0:
        print(f"{Path(args.a).name} and {Path(args.b).name}: the same {len(a)} objects")
    return rc


# --- secret-access ----------------------------------------------------------------------------

def secret_access(args):
    docs = load_docs(args.file)

    def grants_secrets(rule):
        return (set(rule.get("apiGroups") or []) & {"", "*"}
                and set(rule.get("resources") or []) & {"secrets", "*"})

    def secret_rules(obj):
        return [r for r in obj.get("rules") or [] if grants_secrets(r)]

    cluster_roles = [show(d) for d in docs if d.get("kind") == "ClusterRole" and secret_rules(d)]
    roles = [d for d in docs if d.get("kind") == "Role" and secret_rules(d)]
    elsewhere = [show(d) for d in roles if d["metadata"].get("namespace") != args.namespace]
    watched = [show(d) for d in roles
               if any({"list", "watch"} <= set(r.get("verbs") or []) for r in secret_rules(d))]
    env = {}
    for d in docs:
        if d.get("kind") == "Deployment":
            for c in d["spec"]["template"]["spec"]["containers"]:
                env.update({e["name"]: e.get("value") for e in c.get("env") or []})
    restricted = env.get("KEDA_RESTRICT_SECRET_ACCESS") == "true"
    problems = []
    if args.expect == "restricted":
        if cluster_roles:
            problems.append(f"ClusterRoles grant Secrets: {', '.join(cluster_roles)}")
        if elsewhere:
            problems.append(f"Roles outside {args.namespace} grant Secrets: {', '.join(elsewhere)}")
        if not watched:
            problems.append(f"no Role lets kedge list and watch the Secrets of {args.namespace}")
        if not restricted:
            problems.append("the Deployment does not set KEDA_RESTRICT_SECRET_ACCESS=true")
    else:
        if not cluster_roles:
            problems.append("no ClusterRole grants Secrets")
        if restricted:
            problems.append("the Deployment sets KEDA_RESTRICT_SECRET_ACCESS=true")
    for p in problems:
        print(f"{args.file}: {p}")
    if not problems:
        print(f"{Path(args.file).name}: Secrets readable {args.expect}")
    return 1 if problems else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate")
    v.add_argument("--crds", required=True)
    v.add_argument("--versions", required=True)
    v.add_argument("files", nargs="+")
    c = sub.add_parser("compare")
    c.add_argument("--ignore-kind", action="append", default=[])
    c.add_argument("a")
    c.add_argument("b")
    a = sub.add_parser("secret-access")
    a.add_argument("--expect", choices=["cluster-wide", "restricted"], required=True)
    a.add_argument("--namespace", required=True)
    a.add_argument("file")
    args = p.parse_args()
    return {"validate": validate, "compare": compare, "secret-access": secret_access}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
