"""The inspector page (`oel ui`): the provenance chain, security, writes, and a real browser.

A small run is built here by hand (a real Chroma memory, an episode log, a checkpoint manifest); the real
miniature run of tests/test_end_to_end.py walks the chain on what `oel loop` wrote.
"""

import json
import re
import shutil
import subprocess
import sys
import time

import pytest
from starlette.testclient import TestClient

from consolidation.checkpoints import Registry
from consolidation.loop import write_run_config
from memory.store import Memory
from oel.config import OELConfig
from oel.rundir import RunDir
from oel.ui import create_app
from tests.conftest import free_port, oel

EPISODE = "r1-tw-coin_collector_l1_s7-abc123"
HOSTILE = "<script>alert('x')</script><b>bold</b> \x1b[31mred"


def turn(action, feedback, score, reward, now=""):
    prompt = f"Objective: find the coin.\nNow: {now}\nValid commands: go east, look\nYour command:" if now else "..."
    return {"prefix": [{"role": "system", "content": "You play."}, {"role": "user", "content": prompt}],
            "output": action, "action": action, "valid": True, "tokens": 2, "admissible": ["go east", "look"],
            "feedback": feedback, "score": score, "reward": reward}


@pytest.fixture
def run(tmp_path) -> dict:
    """A run with one logged episode, two items written from it (one hostile), and checkpoint v1 that
    absorbed both and was promoted."""
    run_dir = tmp_path / "run"
    write_run_config(OELConfig(), run_dir)
    rd = RunDir(run_dir)
    episode = {"id": EPISODE, "game": "/games/tw-coin_collector_l1_s7.z8", "env": "tw-coin_collector", "round": 1,
               "policy": "smollm2-135m", "mode": "choose", "outcome": "won", "won": True, "reason": "won in 2 steps",
               "score": 1, "max_score": 1, "steps": 2, "tokens": 4, "invalid": 0, "objective": "Find the coin.",
               "turns": [turn("go east", "You are in a cellar. " + HOSTILE, 0, 0, now="You are in the attic."),
                         turn("take coin", "You take the coin.", 1, 1)]}
    rd.trajectories.mkdir(parents=True)
    rd.round_log(1).write_text(json.dumps(episode) + "\n")
    with Memory(rd.memory) as memory:
        lesson, _ = memory.add("Go east from the attic, then take the coin in the cellar.", env="tw-coin_collector",
                               source=EPISODE, outcome="won", round=1, created_by="smollm2-135m")
        hostile, _ = memory.add(HOSTILE, env="tw-coin_collector", source=EPISODE, outcome="won", round=1,
                                created_by="smollm2-135m", merge_distance=0)
        adapter = tmp_path / "adapter"
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text("{}")
        Registry(rd.checkpoints).write(adapter, {
            "version": "v1", "parent": None, "status": "promoted", "round": 1, "knowledge_ids": [lesson, hostile],
            "dataset": {"fingerprint": "f00d", "prefixes": 2, "teacher_context": "memory"},
            "eval": {"before": {"success_no_memory": 0.25, "steps": 9.0, "n_games": 4},
                     "after": {"success_no_memory": 0.75, "steps": 6.0, "n_games": 4}},
            "gate": {"reason": "validation success 75.0% vs parent 25.0% - 0.0%"},
            "training": {"method": "choices", "log": [{"loss": 0.5, "grad_norm": 0.1, "learning_rate": 1e-3, "step": 1}]}})
        memory.mark_consolidated([lesson, hostile], "v1")
    rd.reports.mkdir()
    rd.rounds.write_text("".join(json.dumps({"round": r, "policy": p, "success_no_memory": s, "ci95": [0.1, 0.9],
                                             "n_games": 4, "steps": 8.0, "tokens_per_episode": 20.0, "gate": g}) + "\n"
                                 for r, p, s, g in ((0, "base", 0.25, "-"), (1, "+v1", 0.75, "v1 promoted"))))
    return {"dir": run_dir, "lesson": lesson, "hostile": hostile}


def links(html: str, prefix: str) -> list[str]:
    return re.findall(rf'href="{prefix}([^"?]+)"', html)


def test_the_provenance_chain_leads_from_item_to_episode_to_checkpoint_and_back(run):
    page = TestClient(create_app(run["dir"]))
    memory_view = page.get("/memory?status=all")
    assert memory_view.status_code == 200 and run["lesson"] in links(memory_view.text, "/items/")

    item = page.get(f"/items/{run['lesson']}").text
    assert "Go east from the attic" in item and links(item, "/episodes/") == [EPISODE]
    assert "v1" in links(item, "/checkpoints/")  # the checkpoint that absorbed it, with its evaluation
    assert "25%" in item and "75%" in item and run["hostile"] in links(item, "/items/")  # absorbed with it
    assert re.search(r"consolidated.*v1", item)  # its status history

    episode = page.get(f"/episodes/{EPISODE}").text
    assert "You are in the attic." in episode  # the first observation, from the prompt the agent acted on
    assert "take coin" in episode and "You take the coin." in episode and "(+1)" in episode
    assert run["lesson"] in links(episode, "/items/")  # ... and back to what it taught

    checkpoint = page.get("/checkpoints/v1").text
    assert {run["lesson"], run["hostile"]} <= set(links(checkpoint, "/items/")) and "0.50000" in checkpoint
    checkpoints = page.get("/checkpoints").text
    assert 'id="in-force">v1' in checkpoints and "v1 promoted" in checkpoints  # lineage and the report's table
    assert page.get("/learning_curve.png").content.startswith(b"\x89PNG")
    assert page.get("/memory", params={"q": "where is the coin", "status": "all"}).text.count('href="/items/') == 2


def test_untrusted_text_is_shown_as_text_never_as_markup(run):
    page = TestClient(create_app(run["dir"]))
    for url in (f"/items/{run['hostile']}", f"/episodes/{EPISODE}", "/memory?status=all"):
        response = page.get(url)
        assert "<script>" not in response.text and "<b>bold</b>" not in response.text
        assert "&lt;script&gt;" in response.text and "\x1b" not in response.text
        assert "script-src" not in response.headers["content-security-policy"]  # scripts: 'none' by default-src
        assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "\\x1b[31mred" in page.get(f"/episodes/{EPISODE}").text  # the game's escape sequence, made visible


def test_the_page_is_read_only_unless_started_with_allow_writes(run):
    page = TestClient(create_app(run["dir"]))
    assert page.get(f"/items/{run['lesson']}/forget").status_code == 403
    assert page.post(f"/items/{run['lesson']}/forget", data={"token": "x"}).status_code == 403
    assert "action-forget" not in page.get(f"/items/{run['lesson']}").text
    with Memory(RunDir(run["dir"]).memory, read_only=True) as memory:
        assert memory.get(run["lesson"]).status == "consolidated"


def test_writes_ask_first_and_go_through_the_cli_code(run):
    page = TestClient(create_app(run["dir"], allow_writes=True))
    ask = page.get(f"/items/{run['lesson']}/restore").text
    token = re.search(r'name="token" value="([^"]+)"', ask).group(1)
    assert page.post(f"/items/{run['lesson']}/restore", data={"token": "forged"}).status_code == 403  # not our form

    done = page.post(f"/items/{run['lesson']}/restore", data={"token": token})
    assert done.status_code == 200 and "restored" in done.text
    assert page.post(f"/items/{run['lesson']}/archive", data={"token": token}).status_code == 200
    history = page.get(f"/items/{run['lesson']}").text
    assert re.search(r"active.*consolidated.*active.*archived", history, re.DOTALL)

    forgot = page.post(f"/items/{run['hostile']}/forget", data={"token": token, "reason": "poisoned"})
    assert forgot.status_code == 200 and "tainted: v1" in forgot.text
    assert page.get(f"/items/{run['hostile']}").status_code == 404
    checkpoint = page.get("/checkpoints/v1").text
    assert "tainted" in checkpoint and "poisoned" in checkpoint and "forgotten (deleted" in checkpoint
    assert 'id="in-force">the base model' in page.get("/checkpoints").text
    assert (RunDir(run["dir"]).forgotten).is_file()  # the CLI's ledger: a resumed round never re-learns it


def test_pages_of_the_memory_view_cover_every_item_once(tmp_path):
    with Memory(tmp_path / "m") as memory:
        ids = [memory.add(f"Lesson number {n} about the {'red green blue'.split()[n % 3]} key.", env=env,
                          source=f"e{n}", outcome="won", round=n % 2, created_by="t", merge_distance=0)[0]
               for n, env in enumerate(["tw-a", "tw-b"] * 4)]
        memory.archive(ids[:3])
        pages, offset = [], 0
        while True:
            items, more = memory.page("all", offset=offset, limit=3)
            pages.append(items)
            offset += len(items)
            if not more:
                break
        assert sorted(i.id for page in pages for i in page) == sorted(ids) and len(pages) == 3
        for filters in ({"round": 1}, {"status": "archived"}, {"env": "tw-b"}, {"kind": "procedure"}):
            assert {i.id for i in memory.page(**{"status": "all", **filters})[0]} == \
                   {i.id for i in memory.list(**{"status": "all", **filters})}


def test_a_run_dir_the_page_cannot_serve_is_a_one_line_error(tmp_path, run):
    for bad, message in ((tmp_path / "missing", "no run directory"), (tmp_path, "not a run directory")):
        done = oel("ui", "--run-dir", bad)
        assert done.returncode != 0 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    import socket

    with socket.create_server(("127.0.0.1", 0)) as busy:
        done = oel("ui", "--run-dir", run["dir"], "--port", busy.getsockname()[1])
    assert done.returncode != 0 and "cannot listen" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def browser_or_skip():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Debian's chromium and chromium-driver are not installed (`make test` installs them with "
                    "apt-get where it can)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)  # the system driver: nothing downloaded


@pytest.mark.slow
def test_the_page_in_a_real_browser(run, tmp_path):
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    browser = browser_or_skip()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "oel", "ui", "--run-dir", str(run["dir"]), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert f"http://127.0.0.1:{port}/" in server.stdout.readline()  # bound to this machine only
        deadline = time.time() + 60
        while True:  # the URL is printed before the server listens: a busy machine can refuse the first tries
            try:
                browser.get(f"http://127.0.0.1:{port}/memory?status=all")
            except WebDriverException:
                if time.time() > deadline:
                    raise
            if browser.find_elements(By.ID, "items") or time.time() > deadline:
                break
            time.sleep(0.5)
        browser.find_element(By.LINK_TEXT, run["lesson"]).click()  # the memory view holds the known item
        assert "Go east from the attic" in browser.find_element(By.ID, "item-text").text
        browser.find_element(By.CSS_SELECTOR, "#sources a").click()  # its provenance: the episode
        assert "take coin" in browser.find_element(By.ID, "turns").text
        browser.back()
        browser.find_element(By.CSS_SELECTOR, "#absorbed a").click()  # ... and the checkpoint that absorbed it
        assert "Checkpoint v1" in browser.find_element(By.TAG_NAME, "h1").text
        assert browser.find_element(By.ID, "log").text.count("0.50000") == 1
        browser.save_screenshot(str(tmp_path / "checkpoint.png"))
        assert (tmp_path / "checkpoint.png").read_bytes().startswith(b"\x89PNG")
    finally:
        browser.quit()
        server.terminate()
        server.wait(timeout=30)
