"""The agent served by LangGraph's own server (`langgraph dev`, from langgraph.json), and its JSON schemas."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from oel.served import graph

pytestmark = pytest.mark.slow  # real model, subprocesses or servers: `make test-fast` leaves it out

ROOT = Path(__file__).resolve().parents[1]
LANGGRAPH = shutil.which("langgraph", path=str(Path(sys.executable).parent))


def test_the_served_graph_has_json_schemas_and_plays_from_a_plain_context(tiny_model_dir):
    context = graph.get_context_jsonschema()
    assert {"challenge", "seed", "model", "mode", "max_steps"} <= set(context["properties"])
    assert graph.get_input_jsonschema()["properties"] == {}
    assert "outcome" in graph.get_output_jsonschema()["properties"]
    out = graph.invoke({}, context={"challenge": "tw-coin_collector:1", "seed": 424242, "max_steps": 2,
                                    "model": str(tiny_model_dir)})
    assert out["outcome"] and 1 <= out["steps"] <= 2 and len(out["turns"]) == out["steps"]


def call(url: str, path: str, body: dict | None = None) -> dict | list:
    request = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def test_langgraph_dev_serves_the_agent_and_a_run_plays_a_game(tmp_path, tiny_model_dir):
    """The real server: its schema endpoint answers, and a run with a JSON context plays one episode."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "server.log", "w")  # a pipe left unread would fill and stall the server
    server = subprocess.Popen([LANGGRAPH, "dev", "--config", str(ROOT / "langgraph.json"), "--port", str(port),
                               "--no-browser", "--no-reload"], cwd=ROOT,  # graph paths are relative to it
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                call(url, "/ok")
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
                assert time.time() < deadline, "langgraph dev did not answer within 180 s"
                time.sleep(1)
        [assistant] = call(url, "/assistants/search", {"graph_id": "oel_agent"})
        schemas = call(url, f"/assistants/{assistant['assistant_id']}/schemas")
        assert "challenge" in schemas["context_schema"]["properties"]
        assert "outcome" in schemas["output_schema"]["properties"]
        out = call(url, "/runs/wait", {"assistant_id": assistant["assistant_id"], "input": {},
                                       "context": {"challenge": "tw-coin_collector:1", "seed": 424242,
                                                   "max_steps": 2, "model": str(tiny_model_dir)}})
        assert out["outcome"] and 1 <= out["steps"] <= 2
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def test_the_served_graph_plays_a_game_file_with_a_runs_policy_and_memory(tiny_model_dir, coin_game, tmp_path):
    from consolidation.loop import write_run_config
    from memory.store import Memory
    from oel.config import OELConfig
    from oel.errors import OELError

    run = tmp_path / "run"
    write_run_config(OELConfig(model=str(tiny_model_dir)), run)
    with Memory(run / "memory") as memory:
        memory.add("Take the coin as soon as you see it.", env="tw-coin_collector", source="s", outcome="won",
                   round=1, created_by="test")
    game = tmp_path / "tw-coin_collector" / coin_game.name  # the family is the folder's name
    game.parent.mkdir()
    for part in coin_game.parent.glob(coin_game.stem + ".*"):  # the story file and its sidecars
        shutil.copy(part, game.parent)
    out = graph.invoke({}, context={"game": str(game), "run_dir": str(run), "with_memory": True, "max_steps": 1})
    assert "Take the coin as soon as you see it." in json.dumps(out["turns"][0]["prefix"])
    with pytest.raises(OELError):
        graph.invoke({}, context={"game": str(tmp_path / "notes.txt")})
