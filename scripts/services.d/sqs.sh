# An AWS SQS emulator for the aws-sqs-queue scaler's tests: moto's server (PyPI) in a venv
# under $KEDGE_CACHE, on a free loopback port. It speaks the AWS JSON protocol aws-sdk-sqs uses,
# keeps everything in memory, and picks its backend from the region in the request signature,
# so a queue created in one region does not exist in another (as on AWS).
#
# Exports:
#   KEDGE_SQS_ENDPOINT  http://127.0.0.1:<port>, for `awsEndpoint` (any credentials work); the
#                       port is 4566 (LocalStack's) unless that is taken. The eu-west-1 queue
#                       `example-jobs` holds 8 messages for examples/scalers/aws-sqs-queue.yaml.

SQS_MOTO_VERSION=5.2.5
SQS_PREFERRED_PORT=4566

sqs_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
sqs_ready() { curl -sf "http://127.0.0.1:$1/moto-api/" >/dev/null; }

sqs_start() {
  local venv="$KEDGE_CACHE/moto-$SQS_MOTO_VERSION"
  if [ ! -x "$venv/bin/moto_server" ]; then
    # Debian's python3 creates venvs only with python3-venv (ensurepip) installed.
    python3 -c 'import ensurepip' >/dev/null 2>&1 || apt_install python3-venv
    echo "services: installing moto $SQS_MOTO_VERSION into $venv (~15 s, once)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    # moto_server needs only flask and flask-cors besides moto (the `server` extra pulls
    # docker, cfn-lint and more for other services).
    "$venv/bin/pip" install -q --disable-pip-version-check "moto==$SQS_MOTO_VERSION" flask flask-cors
  fi

  local port_file="$KEDGE_STATE/sqs.port"
  if running sqs && [ -f "$port_file" ] && sqs_ready "$(cat "$port_file")"; then
    export_env KEDGE_SQS_ENDPOINT "http://127.0.0.1:$(cat "$port_file")"
    sqs_seed_example "$(cat "$port_file")"
    return 0
  fi
  # LocalStack's well-known port, which examples/scalers/aws-sqs-queue.yaml uses, when free.
  local port=$SQS_PREFERRED_PORT log="$KEDGE_STATE/sqs.log"
  while sqs_port_open "$port"; do
    port=$((20000 + RANDOM % 20000))
  done
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  remember sqs $!
  echo "$port" >"$port_file"
  if ! wait_for 30 sqs_ready "$port"; then
    echo "services: moto did not answer on 127.0.0.1:$port; log:" >&2
    cat "$log" >&2 || true
    return 1
  fi
  export_env KEDGE_SQS_ENDPOINT "http://127.0.0.1:$port"
  sqs_seed_example "$port"
}

# sqs_call PORT ACTION JSON : one SQS API call in the JSON protocol, signed for eu-west-1 (moto
# routes by the credential scope and does not check the signature).
sqs_call() {
  curl -sf "http://127.0.0.1:$1/" -H 'Content-Type: application/x-amz-json-1.0' \
    -H "X-Amz-Target: AmazonSQS.$2" \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/eu-west-1/sqs/aws4_request, SignedHeaders=host, Signature=0' \
    -d "$3" >/dev/null
}

# The queue examples/scalers/aws-sqs-queue.yaml reads: eu-west-1, 8 messages.
sqs_seed_example() {
  local url="http://127.0.0.1:$1/123456789012/example-jobs"
  sqs_call "$1" CreateQueue '{"QueueName":"example-jobs"}'
  sqs_call "$1" PurgeQueue "{\"QueueUrl\":\"$url\"}"
  for i in $(seq 1 8); do
    sqs_call "$1" SendMessage "{\"QueueUrl\":\"$url\",\"MessageBody\":\"job $i\"}"
  done
}

sqs_stop() {
  if running sqs; then
    kill "$(cat "$KEDGE_STATE/sqs.pid")" 2>/dev/null || true
  fi
  rm -f "$KEDGE_STATE/sqs.pid" "$KEDGE_STATE/sqs.port" "$KEDGE_STATE/sqs.log"
}
