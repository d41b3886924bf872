# Sourced by tests/run.sh and tests/bench.sh: installs the pinned test tools
# (tests/requirements.txt) into .venv, starts moto's AWS-API server on a free 127.0.0.1
# port, stops it when the sourcing script exits, and exports REFERRAL_TEST_ENDPOINT with
# static test credentials.
venv=.venv
if [[ ! -x "$venv/bin/moto_server" ]] || ! cmp -s tests/requirements.txt "$venv/.requirements"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$venv/.requirements"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p target
# moto's request recorder (tests/src/recorder.rs) writes here, not into the working directory;
# one file per server, so concurrent runs never share a recording.
recording="$PWD/target/moto-recording-$port.jsonl"
MOTO_RECORDER_FILEPATH="$recording" \
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >target/moto-server.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null; wait "$moto_pid" 2>/dev/null || true; rm -f "$recording"' EXIT

endpoint="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1] + '/moto-api/', timeout=1)" "$endpoint" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "moto_server exited; see target/moto-server.log" >&2
    exit 1
  fi
  sleep 0.1
done

# Static credentials and no instance metadata: nothing may leave loopback.
export REFERRAL_TEST_ENDPOINT="$endpoint"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
