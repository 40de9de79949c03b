#!/usr/bin/env bash
# Installs and runs the servers cryptoapp needs: Apache Kafka (KRaft, one node), a MongoDB-wire
# server (mongod when installed, else FerretDB on SQLite) and Chromium (for PNG export and browser tests).
#
#   scripts/services.sh up     [kafka|mongo|chromium|worker|dashboard ...]   (WORKERS=N: N workers, web ports
#                                                                             WEB_PORT, WEB_PORT+1, ...)
#                              install what is missing, start, wait until ready (default: the servers)
#   scripts/services.sh down   [name ...]    stop exactly the processes this script started (default: all)
#   scripts/services.sh kill   [name ...]    SIGKILL them (fault drills: make chaos)
#   scripts/services.sh status                              address, version and pid of each service
#   scripts/services.sh logs   [kafka|mongo]                last lines of the logs
#
# Data, logs and pid files live under .local/ (or $CRYPTOAPP_LOCAL); downloads and builds are cached
# per user outside the work tree (~/.m2 for Kafka's jars, ~/.local/share/cryptoapp for FerretDB).
# KAFKA_BROKER / MONGO_URI pointing at a server that is not local, or CRYPTOAPP_EXTERNAL_SERVICES=1
# (servers you run yourself, e.g. with compose.yaml): nothing is started, reachability is checked.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL=${CRYPTOAPP_LOCAL:-$ROOT/.local}
RUN=$LOCAL/run
LOGS=$LOCAL/logs
CACHE=${XDG_DATA_HOME:-$HOME/.local/share}/cryptoapp
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml")
FERRETDB_VERSION=v1.24.2
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}
READY_TIMEOUT=${SERVICES_READY_TIMEOUT:-90}

die() { echo "services: $*" >&2; exit 1; }
say() { echo "services: $*"; }

# --- addresses --------------------------------------------------------------------------------
# Addresses are read by cryptoapp/uris.py, the parser the worker and the dashboard use (standard library only).
kafka_addr() { PYTHONPATH=$ROOT python3 -m cryptoapp.uris kafka; }  # host:port of the first bootstrap server
mongo_addr() { PYTHONPATH=$ROOT python3 -m cryptoapp.uris mongo; }  # host:port of the first host, or "srv"
host_of() { echo "${1%:*}"; }
port_of() { echo "${1##*:}"; }
# A server is ours to start only at a local address, and not when the user runs it (docker compose).
is_local() {
  [[ ${CRYPTOAPP_EXTERNAL_SERVICES:-0} == 1 ]] && return 1
  case $1 in localhost|127.*|::1|0.0.0.0) return 0 ;; *) return 1 ;; esac
}
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
port_owner() {  # "pid/name" of the program listening on a port, when ss can tell
  command -v ss >/dev/null || return 0
  ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((("\([^"]*\)",pid=\([0-9]*\).*/\2\/\1/p' | head -1
}

# --- pid files: a pid counts as ours only while its command line still matches ----------------
pid_of() {  # $1 service, $2 pattern its command line must contain
  local f=$RUN/$1.pid pid
  [[ -f $f ]] || return 1
  pid=$(cat "$f")
  if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$2"; then
    echo "$pid"; return 0
  fi
  rm -f "$f"; return 1
}

wait_ready() {  # $1 name, $2 pid, $3 host, $4 port, $5 log file
  local deadline=$((SECONDS + READY_TIMEOUT))
  until port_open "$3" "$4"; do
    if ! kill -0 "$2" 2>/dev/null; then
      echo "services: $1 exited while starting; last 20 lines of $5:" >&2
      tail -n 20 "$5" >&2 || true
      exit 1
    fi
    ((SECONDS < deadline)) || die "$1 did not open $3:$4 within ${READY_TIMEOUT}s; see $5"
    sleep 0.2
  done
}

check_free_port() {  # $1 name, $2 port, $3 env var that moves it
  local owner
  owner=$(port_owner "$2")
  die "port $2 is taken by another program${owner:+ (pid/name $owner)}: stop it, or set $3 to a free port, or point $3 at that server if it is a $1"
}

stop_pid() {  # $1 name, $2 pid, $3 signal
  kill "-$3" "$2" 2>/dev/null || return 0
  local deadline=$((SECONDS + 30))
  while kill -0 "$2" 2>/dev/null; do
    if ((SECONDS >= deadline)); then kill -KILL "$2" 2>/dev/null || true; fi
    sleep 0.1
  done
  rm -f "$RUN/$1.pid"
  say "$1 stopped (pid $2)"
}

# Succeeds when there is nothing to start: the server is someone else's (checked reachable) or ours and running.
already_there() {  # $1 service, $2 host:port, $3 what names it (env var [+ "host"]), $4 what it is, $5 pattern of ours
  local host port pid
  host=$(host_of "$2"); port=$(port_of "$2")
  if ! is_local "$host"; then
    port_open "$host" "$port" || die "$3 $2 is not reachable: start that $4, or unset ${3%% *} and CRYPTOAPP_EXTERNAL_SERVICES to run a local one"
    say "$1: using $2 (external), nothing started"; return 0
  fi
  if pid=$(pid_of "$1" "$5"); then
    port_open "$host" "$port" && { say "$1: running on $2 (pid $pid)"; return 0; }
    wait_ready "$1" "$pid" "$host" "$port" "$LOGS/$1.log"; return 0
  fi
  return 1
}

# --- Kafka --------------------------------------------------------------------------------------
KAFKA_PATTERN="kafka.Kafka"

kafka_classpath() {  # resolved once per clone by Maven; the jars themselves are cached in ~/.m2
  local cp_file=$LOCAL/kafka/classpath-$KAFKA_VERSION.txt
  if [[ -s $cp_file ]] && [[ -f $(cut -d: -f1 "$cp_file") ]]; then cat "$cp_file"; return; fi
  command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install maven) or set KAFKA_HOME to an unpacked Kafka"
  mkdir -p "$LOCAL/kafka" "$LOGS"
  say "resolving Apache Kafka $KAFKA_VERSION from Maven Central (first time only; log: $LOGS/kafka-install.log)" >&2
  mvn -B -q -f "$ROOT/scripts/kafka/pom.xml" dependency:build-classpath \
      -Dmdep.outputFile="$cp_file" >"$LOGS/kafka-install.log" 2>&1 \
    || { tail -n 20 "$LOGS/kafka-install.log" >&2; die "Maven could not fetch Kafka $KAFKA_VERSION; see $LOGS/kafka-install.log"; }
  cat "$cp_file"
}

kafka_properties() {  # $1 host, $2 port
  local dir=$LOCAL/kafka cport=$(($2 + 1))
  cat > "$dir/server.properties" <<EOF
# Written by scripts/services.sh: one node that is broker and controller (KRaft).
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://$1:$2,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://$1:$2
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
EOF
  if [[ $KAFKA_VERSION == 3.* ]]; then
    sed -i '/controller.quorum.bootstrap.servers/d' "$dir/server.properties"
  else
    sed -i '/controller.quorum.voters/d' "$dir/server.properties"
  fi
}

kafka_up() {
  local addr host port pid
  addr=$(kafka_addr); host=$(host_of "$addr"); port=$(port_of "$addr")
  already_there kafka "$addr" KAFKA_BROKER broker "$KAFKA_PATTERN" && return
  port_open "$host" "$port" && check_free_port kafka "$port" KAFKA_BROKER
  command -v java >/dev/null || die "java not found: install a Java 17+ runtime (apt-get install openjdk-17-jre-headless)"
  mkdir -p "$LOCAL/kafka/data" "$LOGS" "$RUN"
  kafka_properties "$host" "$port"
  local props=$LOCAL/kafka/server.properties
  if [[ -n ${KAFKA_HOME:-} ]]; then
    [[ -x $KAFKA_HOME/bin/kafka-server-start.sh ]] || die "KAFKA_HOME=$KAFKA_HOME has no bin/kafka-server-start.sh: point it at an unpacked Kafka distribution"
    if [[ ! -f $LOCAL/kafka/data/meta.properties ]]; then
      "$KAFKA_HOME/bin/kafka-storage.sh" format -t "$("$KAFKA_HOME/bin/kafka-storage.sh" random-uuid)" \
        -c "$props" --standalone >>"$LOGS/kafka.out" 2>&1 || die "formatting Kafka storage failed; see $LOGS/kafka.out"
    fi
    LOG_DIR=$LOGS KAFKA_HEAP_OPTS=$KAFKA_HEAP_OPTS nohup "$KAFKA_HOME/bin/kafka-server-start.sh" "$props" \
      >"$LOGS/kafka.out" 2>&1 &
  else
    local cp
    cp=$(kafka_classpath)
    if [[ ! -f $LOCAL/kafka/data/meta.properties ]]; then
      local cluster_id
      # Like Kafka's own random-uuid: an id starting with "-" would be read as an option (1 time in 64).
      cluster_id=$(python3 -c 'import base64,uuid
while (i := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"): pass
print(i)')
      java -cp "$cp" -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" -Dkafka.logs.dir="$LOGS" \
        kafka.tools.StorageTool format -t "$cluster_id" -c "$props" --standalone >>"$LOGS/kafka.out" 2>&1 \
        || { tail -n 20 "$LOGS/kafka.out" >&2; die "formatting Kafka storage failed; see $LOGS/kafka.out"; }
    fi
    # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS holds several JVM flags
    nohup java $KAFKA_HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" -Dkafka.logs.dir="$LOGS" \
      -cp "$cp" kafka.Kafka "$props" >"$LOGS/kafka.out" 2>&1 &
  fi
  echo $! > "$RUN/kafka.pid"
  say "kafka: starting Apache Kafka $KAFKA_VERSION on $addr (pid $!)"
}

kafka_wait() {
  local addr pid
  addr=$(kafka_addr)
  is_local "$(host_of "$addr")" || return 0
  pid=$(pid_of kafka "$KAFKA_PATTERN") || return 0
  wait_ready kafka "$pid" "$(host_of "$addr")" "$(port_of "$addr")" "$LOGS/kafka.log"
}

# --- MongoDB-wire server ------------------------------------------------------------------------
MONGO_PATTERN="--listen-addr\|--dbpath"

ferretdb_bin() {  # built once per user from FerretDB's Go module, then reused by every clone
  local bin=$CACHE/bin/ferretdb-$FERRETDB_VERSION
  if [[ -x $bin ]]; then echo "$bin"; return; fi
  command -v go >/dev/null || die "go not found: install Go 1.24+ (apt-get install golang) to build FerretDB, or put mongod on PATH, or set MONGO_URI"
  mkdir -p "$CACHE/bin" "$LOGS"
  say "building FerretDB $FERRETDB_VERSION from its Go module (first time only, ~2 min; log: $LOGS/ferretdb-install.log)" >&2
  local src tmp
  src=$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" 2>>"$LOGS/ferretdb-install.log" \
        | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])') \
    || die "could not download FerretDB $FERRETDB_VERSION from the Go module proxy; see $LOGS/ferretdb-install.log"
  # FerretDB's release build generates build/version/version.txt (`task gen-version`); a plain
  # `go install` lacks it and the binary panics at start, so build a copy that has it.
  tmp=$(mktemp -d)
  cp -r "$src/." "$tmp" && chmod -R u+w "$tmp"
  echo "$FERRETDB_VERSION" > "$tmp/build/version/version.txt"
  (cd "$tmp" && go build -trimpath -o "$bin.tmp" ./cmd/ferretdb) >>"$LOGS/ferretdb-install.log" 2>&1 \
    || { rm -rf "$tmp"; tail -n 20 "$LOGS/ferretdb-install.log" >&2; die "building FerretDB failed; see $LOGS/ferretdb-install.log"; }
  rm -rf "$tmp"
  mv "$bin.tmp" "$bin"
  echo "$bin"
}

mongo_up() {
  local addr host port pid
  addr=$(mongo_addr)
  if [[ $addr == srv ]]; then say "mongo: using the MONGO_URI cluster (mongodb+srv), nothing started"; return; fi
  host=$(host_of "$addr"); port=$(port_of "$addr")
  already_there mongo "$addr" "MONGO_URI host" server "$MONGO_PATTERN" && return
  port_open "$host" "$port" && check_free_port "MongoDB server" "$port" MONGO_URI
  mkdir -p "$LOCAL/mongo" "$LOGS" "$RUN"
  if command -v mongod >/dev/null; then
    mkdir -p "$LOCAL/mongo/mongod"
    nohup mongod --dbpath "$LOCAL/mongo/mongod" --bind_ip "$host" --port "$port" >"$LOGS/mongo.log" 2>&1 &
    echo $! > "$RUN/mongo.pid"
    say "mongo: starting mongod on $addr (pid $!)"
  else
    local bin
    bin=$(ferretdb_bin)
    mkdir -p "$LOCAL/mongo/ferretdb" "$LOCAL/mongo/state"
    # --debug-addr defaults to :8088; an ephemeral port keeps it out of other programs' way.
    nohup "$bin" --handler="${FERRETDB_HANDLER:-sqlite}" --sqlite-url="file:$LOCAL/mongo/ferretdb/" \
      --listen-addr="$host:$port" --state-dir="$LOCAL/mongo/state" --debug-addr=127.0.0.1:0 \
      --telemetry=disable --log-level=warn >"$LOGS/mongo.log" 2>&1 &
    echo $! > "$RUN/mongo.pid"
    say "mongo: starting FerretDB $FERRETDB_VERSION (${FERRETDB_HANDLER:-sqlite}) on $addr (pid $!)"
  fi
}

mongo_wait() {
  local addr pid
  addr=$(mongo_addr)
  [[ $addr != srv ]] && is_local "$(host_of "$addr")" || return 0
  pid=$(pid_of mongo "$MONGO_PATTERN") || return 0
  wait_ready mongo "$pid" "$(host_of "$addr")" "$(port_of "$addr")" "$LOGS/mongo.log"
}

mongo_version() {
  if command -v mongod >/dev/null; then mongod --version | head -1
  elif [[ -x $CACHE/bin/ferretdb-$FERRETDB_VERSION ]]; then echo "FerretDB $FERRETDB_VERSION (SQLite backend)"
  else echo "FerretDB $FERRETDB_VERSION (not built yet)"; fi
}

# --- Chromium (no process: kaleido and the browser tests start it themselves) --------------------
chromium_path() { command -v chromium || command -v chromium-browser || command -v google-chrome || true; }

chromium_up() {
  [[ -n $(chromium_path) ]] && return
  [[ $(id -u) == 0 ]] || die "chromium not found: run 'sudo apt-get install chromium' (kaleido and the browser tests need it)"
  say "installing Debian's chromium (first time only; log: $LOGS/chromium-install.log)"
  mkdir -p "$LOGS"
  { apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; } \
    >"$LOGS/chromium-install.log" 2>&1 || die "apt-get install chromium failed; see $LOGS/chromium-install.log"
}

# --- the project's own processes: the Faust worker and the Streamlit dashboard ---------------------
WORKER_PATTERN="cryptoapp worker"
DASHBOARD_PATTERN="dashboard/app.py"

app_up() {  # $1 worker|dashboard, $2 the worker's number (1..WORKERS; worker 1 is "worker", on WEB_PORT)
  local name=$1 n=${2:-1} pattern port pid cmd
  case $name in
    worker) pattern=$WORKER_PATTERN; port=$(( ${WEB_PORT:-6066} + n - 1 ))
            ((n > 1)) && name=worker-$n
            cmd=("$ROOT/.venv/bin/cryptoapp" worker -l info --web-port "$port") ;;
    dashboard) pattern=$DASHBOARD_PATTERN; port=${DASHBOARD_PORT:-8501}
            cmd=("$ROOT/.venv/bin/streamlit" run "$ROOT/dashboard/app.py" --server.port "$port"
                 --server.address 127.0.0.1 --server.headless true --browser.gatherUsageStats false) ;;
  esac
  [[ -x ${cmd[0]} ]] || die "${cmd[0]} is missing: run 'make install' first"
  if pid=$(pid_of "$name" "$pattern"); then say "$name: running (pid $pid)"; return; fi
  port_open 127.0.0.1 "$port" && check_free_port "$name" "$port" "$([[ $name == worker* ]] && echo WEB_PORT || echo DASHBOARD_PORT)"
  mkdir -p "$LOGS" "$RUN"
  (cd "$ROOT" && exec nohup "${cmd[@]}" >>"$LOGS/$name.log" 2>&1) &
  echo $! > "$RUN/$name.pid"
  wait_ready "$name" "$!" 127.0.0.1 "$port" "$LOGS/$name.log"
  say "$name: started (pid $(cat "$RUN/$name.pid")) on port $port, log $LOGS/$name.log"
}

workers() {  # the names of the workers this script started (worker, worker-2, ...), from their pid files
  local f
  for f in "$RUN"/worker.pid "$RUN"/worker-*.pid; do [[ -f $f ]] && basename "$f" .pid; done
  return 0
}

# --- commands -----------------------------------------------------------------------------------
services_or_all() { if (($#)); then echo "$@"; else echo kafka mongo chromium; fi; }

cmd_up() {
  local s
  # Start both servers first, then wait for both: their start-up times overlap.
  for s in $(services_or_all "$@"); do
    case $s in
      kafka) kafka_up ;; mongo) mongo_up ;; chromium) chromium_up ;; worker|dashboard) ;;
      *) die "unknown service '$s' (kafka, mongo, chromium, worker, dashboard)" ;;
    esac
  done
  for s in $(services_or_all "$@"); do
    case $s in kafka) kafka_wait ;; mongo) mongo_wait ;; esac
  done
  local n count=${WORKERS:-1}
  [[ $count =~ ^[1-9][0-9]*$ ]] || die "WORKERS=$count is not a number of workers: use 1 or more"
  for s in $(services_or_all "$@"); do  # the apps start once the servers they need accept connections
    case $s in
      worker) for ((n = 1; n <= count; n++)); do app_up worker "$n"; done ;;
      dashboard) app_up dashboard ;;
    esac
  done
}

cmd_stop() {  # $1 signal, rest services
  local sig=$1 s pid w; shift
  # Stop the apps before the servers they use, so the worker can flush its last batch.
  for s in $(if (($#)); then echo "$@"; else echo dashboard worker kafka mongo; fi); do
    case $s in
      worker) for w in $(workers); do pid=$(pid_of "$w" "$WORKER_PATTERN") && stop_pid "$w" "$pid" "$sig" || true; done ;;
      dashboard) pid=$(pid_of dashboard "$DASHBOARD_PATTERN") && stop_pid dashboard "$pid" "$sig" || true ;;
      kafka) pid=$(pid_of kafka "$KAFKA_PATTERN") && stop_pid kafka "$pid" "$sig" || true ;;
      mongo) pid=$(pid_of mongo "$MONGO_PATTERN") && stop_pid mongo "$pid" "$sig" || true ;;
      chromium) ;;
      *) die "unknown service '$s' (kafka, mongo, worker, dashboard)" ;;
    esac
  done
}

cmd_status() {
  local pid
  printf '%-9s %-30s %-36s %s\n' service address version pid
  pid=$(pid_of kafka "$KAFKA_PATTERN" || echo "-")
  printf '%-9s %-30s %-36s %s\n' kafka "$(kafka_addr)" "Apache Kafka ${KAFKA_HOME:+(KAFKA_HOME) }$KAFKA_VERSION" \
    "$pid$(port_open "$(host_of "$(kafka_addr)")" "$(port_of "$(kafka_addr)")" && echo " (accepting)" || echo " (down)")"
  pid=$(pid_of mongo "$MONGO_PATTERN" || echo "-")
  local m; m=$(mongo_addr)
  printf '%-9s %-30s %-36s %s\n' mongo "$m" "$(mongo_version)" \
    "$pid$([[ $m != srv ]] && port_open "$(host_of "$m")" "$(port_of "$m")" && echo " (accepting)" || echo " (down)")"
  local name n listed
  listed=$(workers)
  for name in ${listed:-worker} dashboard; do
    n=${name#worker-}; [[ $n == "$name" ]] && n=1
    local pattern=$WORKER_PATTERN url="http://localhost:$(( ${WEB_PORT:-6066} + n - 1 ))/prices/"
    [[ $name == dashboard ]] && pattern=$DASHBOARD_PATTERN url="http://localhost:${DASHBOARD_PORT:-8501}"
    printf '%-9s %-30s %-36s %s\n' "$name" "$url" "cryptoapp" "$(pid_of "$name" "$pattern" || echo "- (stopped)")"
  done
  local c; c=$(chromium_path)
  printf '%-9s %-30s %-36s %s\n' chromium "${c:-not installed}" "$([[ -n $c ]] && "$c" --version 2>/dev/null | head -1)" "-"
}

cmd_logs() {
  local s
  for s in $(if (($#)); then echo "$@"; else echo kafka mongo; fi); do
    case $s in
      kafka) echo "== $LOGS/kafka.log"; tail -n 40 "$LOGS/kafka.log" 2>/dev/null || true ;;
      mongo) echo "== $LOGS/mongo.log"; tail -n 40 "$LOGS/mongo.log" 2>/dev/null || true ;;
      *) echo "== $LOGS/$s.log"; tail -n 40 "$LOGS/$s.log" 2>/dev/null || true ;;
    esac
  done
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_stop TERM "$@" ;;
  kill) shift; cmd_stop KILL "$@" ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  *) echo "usage: $0 up|down|kill|status|logs [kafka|mongo|chromium|worker|dashboard ...]" >&2; exit 2 ;;
esac
