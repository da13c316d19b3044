# kubectl drives local-cluster in the end-to-end tests as a real client. The machine image
# ships it; without it those tests cannot run.
kubectl_start() {
  command -v kubectl >/dev/null 2>&1 || {
    echo "services: kubectl is missing; install Google's kubectl package (1.27+)" >&2
    return 1
  }
}
kubectl_stop() { :; }
