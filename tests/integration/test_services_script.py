"""Requires bash and the running services: scripts/services.sh reports and fails the way the README says."""

import os
import socket
import subprocess

import pytest

from tests.conftest import SERVICES

pytestmark = pytest.mark.integration


def run_services(*args, tmp_path, **env):
    return subprocess.run([str(SERVICES), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CRYPTOAPP_LOCAL": str(tmp_path), **env})


def test_status_names_address_version_and_pid(services):
    out = subprocess.run([str(SERVICES), "status"], capture_output=True, text=True, check=True).stdout
    kafka = next(line for line in out.splitlines() if line.startswith("kafka"))
    mongo = next(line for line in out.splitlines() if line.startswith("mongo"))
    assert services["kafka"] in kafka and "Apache Kafka 4.1" in kafka and "(accepting)" in kafka
    assert services["mongo_uri"].split("://")[1].split("/")[0] in mongo and "(accepting)" in mongo
    assert any(word.isdigit() for word in kafka.split()), "kafka's pid is shown"


def test_unreachable_remote_mongo_is_one_clear_line(tmp_path):
    result = run_services("up", "mongo", tmp_path=tmp_path, MONGO_URI="mongodb://user:s3cret@db.example.invalid:27017/crypto")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "services: MONGO_URI host db.example.invalid:27017 is not reachable: "
        "start that server, or unset MONGO_URI and CRYPTOAPP_EXTERNAL_SERVICES to run a local one")
    assert "s3cret" not in result.stdout + result.stderr


def test_port_taken_by_another_program_is_refused(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = run_services("up", "mongo", tmp_path=tmp_path, MONGO_URI=f"mongodb://127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"port {port} is taken by another program" in result.stderr
    assert "set MONGO_URI to a free port" in result.stderr
    assert not (tmp_path / "run" / "mongo.pid").exists()
