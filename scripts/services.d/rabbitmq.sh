# RabbitMQ with the management plugin, for the rabbitmq scaler's tests.
#
# The machines this project runs on start the Debian package's broker (node rabbit@localhost,
# AMQP on 127.0.0.1:5672, guest/guest) without the management plugin. This plug-in enables the
# plugin on that running node, listening on 127.0.0.1:15672 only and with statistics sampled
# every second instead of every five (so tests see counters and rates sooner), and creates the
# vhost the tests use. Where no broker runs, it installs and starts one the package's way and
# stops it again at `stop`. The plugin stays enabled: enabling takes ~8 s and is harmless.
#
# Exports:
#   KEDGE_RABBITMQ_AMQP_URL  amqp://guest:guest@127.0.0.1:5672 (no vhost: tests add theirs)
#   KEDGE_RABBITMQ_HTTP_URL  http://guest:guest@127.0.0.1:15672 (management API)
#   KEDGE_RABBITMQ_VHOST     a vhost for tests (they still use fresh queue names); it also
#                            holds `example-emails` (12 messages) for examples/scalers/rabbitmq.yaml
#   KEDGE_RABBITMQ_CTL       the rabbitmqctl controlling this broker (the restart test uses
#                            `stop_app`/`start_app`)

RABBITMQ_AMQP_PORT=5672
RABBITMQ_MGMT_PORT=15672
RABBITMQ_TEST_VHOST=kedge-test

rabbitmq_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
rabbitmq_api() { curl -sf -u guest:guest "$@"; }
rabbitmq_mgmt_up() { rabbitmq_api "http://127.0.0.1:$RABBITMQ_MGMT_PORT/api/overview" >/dev/null; }

rabbitmq_start() {
  if ! command -v rabbitmqctl >/dev/null 2>&1; then
    apt_install rabbitmq-server
  fi
  if ! rabbitmq_port_open "$RABBITMQ_AMQP_PORT"; then
    # As the machine image does it; the wrapper runs the broker as the rabbitmq user.
    echo "services: no RabbitMQ on 127.0.0.1:$RABBITMQ_AMQP_PORT, starting the package's broker"
    rabbitmq-server -detached
    touch "$KEDGE_STATE/rabbitmq.started"
    if ! wait_for 90 rabbitmq_port_open "$RABBITMQ_AMQP_PORT"; then
      echo "services: RabbitMQ did not open port $RABBITMQ_AMQP_PORT" >&2
      return 1
    fi
  fi
  if ! rabbitmq_mgmt_up; then
    # Settings the management plugin reads when it starts, so they go in before `enable`:
    # loopback only, and 1 s statistics (counters ~1 s behind instead of 5 s, rates sampled
    # every second). They last until the node restarts, and survive stop_app/start_app.
    rabbitmqctl -q eval '
      application:load(rabbitmq_management),
      application:load(rabbitmq_management_agent),
      application:set_env(rabbitmq_management, tcp_config, [{ip, "127.0.0.1"}, {port, '"$RABBITMQ_MGMT_PORT"'}]),
      application:set_env(rabbit, collect_statistics_interval, 1000),
      Policies = [{global, [{60, 1}]}, {basic, [{60, 1}]}, {detailed, [{10, 1}]}],
      application:set_env(rabbitmq_management, sample_retention_policies, Policies),
      application:set_env(rabbitmq_management_agent, sample_retention_policies, Policies),
      ok.' >/dev/null
    rabbitmq-plugins -q enable rabbitmq_management >/dev/null
    if ! wait_for 60 rabbitmq_mgmt_up; then
      echo "services: the RabbitMQ management API did not come up on 127.0.0.1:$RABBITMQ_MGMT_PORT" >&2
      return 1
    fi
  fi
  local api="http://127.0.0.1:$RABBITMQ_MGMT_PORT/api"
  rabbitmq_api -X PUT "$api/vhosts/$RABBITMQ_TEST_VHOST" >/dev/null
  rabbitmq_api -X PUT -H 'content-type: application/json' \
    -d '{"configure":".*","write":".*","read":".*"}' \
    "$api/permissions/$RABBITMQ_TEST_VHOST/guest" >/dev/null

  # examples/scalers/rabbitmq.yaml reads this queue: 12 messages, whatever was there before.
  local q="$api/queues/$RABBITMQ_TEST_VHOST/example-emails"
  rabbitmq_api -X PUT -H 'content-type: application/json' -d '{"durable":true}' "$q" >/dev/null
  rabbitmq_api -X DELETE "$q/contents" >/dev/null
  for _ in $(seq 1 12); do
    rabbitmq_api -X POST -H 'content-type: application/json' \
      -d '{"properties":{"delivery_mode":2},"routing_key":"example-emails","payload":"hello","payload_encoding":"string"}' \
      "$api/exchanges/$RABBITMQ_TEST_VHOST/amq.default/publish" >/dev/null
  done

  export_env KEDGE_RABBITMQ_AMQP_URL "amqp://guest:guest@127.0.0.1:$RABBITMQ_AMQP_PORT"
  export_env KEDGE_RABBITMQ_HTTP_URL "http://guest:guest@127.0.0.1:$RABBITMQ_MGMT_PORT"
  export_env KEDGE_RABBITMQ_VHOST "$RABBITMQ_TEST_VHOST"
  export_env KEDGE_RABBITMQ_CTL "$(command -v rabbitmqctl)"
}

rabbitmq_stop() {
  # The machine's broker is left running; one we started is stopped.
  if [ -f "$KEDGE_STATE/rabbitmq.started" ]; then
    rabbitmqctl -q stop >/dev/null 2>&1 || true
    rm -f "$KEDGE_STATE/rabbitmq.started"
  fi
}
